package main

import (
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/trapemu/trapemu/cmd/trapemu/internal/agent"
	"github.com/trapemu/trapemu/sigsys/trace"
)

const preloadName = "libtrapemu-preload.so"

// findPreload locates the preload object: --preload, $TRAPEMU_PRELOAD, or
// next to this executable.
func findPreload(flagPath string) (string, error) {
	for _, p := range []string{flagPath, os.Getenv("TRAPEMU_PRELOAD")} {
		if p != "" {
			return filepath.Abs(p)
		}
	}
	exe, err := os.Executable()
	if err == nil {
		p := filepath.Join(filepath.Dir(exe), preloadName)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found next to %s; build it with: go build -buildmode=c-shared -o %s ./cmd/trapemu/preload",
		preloadName, exe, filepath.Join(filepath.Dir(exe), preloadName))
}

// checkDynamic refuses programs LD_PRELOAD can't reach.
func checkDynamic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil
		}
	}
	return fmt.Errorf("%s is statically linked: the trapemu runtime is loaded with LD_PRELOAD, which only dynamically linked programs honour", path)
}

// session runs a program with the agent and collects what it sends.
type session struct {
	follow   bool
	mu       sync.Mutex
	followed map[int]bool
	records  func(*trace.Record)
	errs     []string
}

func (s *session) accept(l *net.UnixListener, wg *sync.WaitGroup) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			s.serve(c)
		}()
	}
}

func (s *session) serve(c *net.UnixConn) {
	buf := make([]byte, trace.RawSize+1)
	n, err := c.Read(buf)
	if err != nil {
		return
	}
	var hello agent.Hello
	if err := json.Unmarshal(buf[:n], &hello); err != nil {
		return
	}
	s.mu.Lock()
	if hello.Error != "" {
		s.errs = append(s.errs, fmt.Sprintf("pid %d (%s): %s", hello.PID, hello.Exe, hello.Error))
	}
	if s.followed[hello.ExecedBy] {
		s.followed[hello.PID] = true // it replaces a followed process
	}
	s.mu.Unlock()
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			return
		}
		r, err := trace.Decode(buf[:n])
		if err != nil {
			continue
		}
		s.mu.Lock()
		if s.follow || s.followed[r.PID] {
			s.records(&r)
		}
		s.mu.Unlock()
	}
}

// launch runs argv with the agent configured by env; it returns the
// program's exit code once the program and every traced process are done.
func (s *session) launch(preloadFlag string, argv []string, env []string) (int, error) {
	if len(argv) == 0 {
		return 2, errors.New("no program given (put it after --)")
	}
	preload, err := findPreload(preloadFlag)
	if err != nil {
		return 1, err
	}
	prog, err := exec.LookPath(argv[0])
	if err != nil {
		return 127, err
	}
	if err := checkDynamic(prog); err != nil {
		return 1, err
	}
	dir, err := os.MkdirTemp("", "trapemu")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		return 1, err
	}
	var wg sync.WaitGroup
	go s.accept(l, &wg)

	cmd := exec.Command(prog, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	ld := preload
	if old := os.Getenv("LD_PRELOAD"); old != "" {
		ld += ":" + old
	}
	cmd.Env = append(append(os.Environ(), "LD_PRELOAD="+ld, agent.EnvSocket+"="+sock), env...)
	s.followed = map[int]bool{}
	s.mu.Lock()
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return 127, err
	}
	s.followed[cmd.Process.Pid] = true
	s.mu.Unlock()

	// Signals for trapemu are the program's: forward them.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	go func() {
		for sig := range sigs {
			cmd.Process.Signal(sig)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	l.Close()
	wg.Wait() // every traced process has hung up
	for _, e := range s.errs {
		fmt.Fprintln(os.Stderr, "trapemu: agent:", e)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

// splitArgs splits flags from the program at "--".
func splitArgs(args []string) (flags, prog []string) {
	for i, a := range args {
		if a == "--" {
			return args[:i], args[i+1:]
		}
	}
	// No "--": flags end at the first non-flag.
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			return args[:i], args[i:]
		}
	}
	return args, nil
}

func output(path string) (io.Writer, func() error, error) {
	if path == "" {
		return os.Stderr, func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

func stdout() io.Writer { return os.Stdout }
