package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/cgo"
	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/sigsys"
	"github.com/trapemu/trapemu/trap"
)

const (
	goBase       = 1_000_000 // the Go handler answers goBase + arg0
	fallbackPPID = 5555      // the fallback answers this
)

// goPolicy traps getppid with a Go handler whose answer depends on the
// call, and a fallback that can't know it: each answer shows its path.
func goPolicy(handlerCalls *atomic.Int64) *trap.Policy {
	p := trap.NewPolicy()
	p.Trap("getppid", emulate.Func(func(c *sigsys.Call) sigsys.Result {
		handlerCalls.Add(1)
		return sigsys.Return(goBase + int64(c.Args[0]))
	}, emulate.Return(fallbackPPID)))
	return p
}

func init() {
	childtest.Register("go-handler-no-deadlock", func() error {
		var calls atomic.Int64
		rt, err := install(goPolicy(&calls))
		if err != nil {
			return err
		}
		stop := make(chan struct{})
		gcStorm(stop, 1, 256<<10)
		const n = 20000
		var wrongGo, wrongC atomic.Int64
		var wg sync.WaitGroup
		wg.Add(4)
		// Go raw syscalls hold a P: they must get the fallback, never wait.
		for k := 0; k < 2; k++ {
			go func() {
				defer wg.Done()
				for i := 0; i < n; i++ {
					if syscall.Getppid() != fallbackPPID {
						wrongGo.Add(1)
					}
					if i%2000 == 0 {
						runtime.Gosched()
					}
				}
			}()
		}
		// C threads (no P): the Go handler answers, with their argument.
		go func() {
			defer wg.Done()
			if w := CThreadsArg(3, unix.SYS_GETPPID, n/3, goBase); w != 0 {
				wrongC.Add(w)
			}
		}()
		// cgo calls from goroutines: C code, P released.
		go func() {
			defer wg.Done()
			for i := 0; i < n/4; i++ {
				if r, _ := CSyscall6(unix.SYS_GETPPID, uintptr(i), 0, 0, 0, 0, 0); r != goBase+int64(i) {
					wrongC.Add(1)
				}
			}
		}()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Minute):
			return fmt.Errorf("hung")
		}
		close(stop)
		st := rt.Stats().Rules[0]
		fmt.Printf("go=%d fallback=%d handler-calls=%d\n", st.GoCalls, st.Fallbacks, calls.Load())
		if wrongGo.Load() != 0 || wrongC.Load() != 0 {
			return fmt.Errorf("wrong answers: %d from Go callers, %d from C callers", wrongGo.Load(), wrongC.Load())
		}
		if st.Fallbacks < 2*n || st.GoCalls < n/3*3+n/4 {
			return fmt.Errorf("counts: %d fallbacks, %d Go calls", st.Fallbacks, st.GoCalls)
		}
		if st.GoCalls != uint64(calls.Load()) {
			return fmt.Errorf("stats say %d Go calls, the handler ran %d times", st.GoCalls, calls.Load())
		}
		return nil
	})

	childtest.Register("go-handler-own-syscalls-and-concurrency", func() error {
		realPPID := os.Getppid()
		var inside, most atomic.Int64
		release := make(chan struct{})
		p := trap.NewPolicy().GoHandlers(sigsys.ServiceOptions{Threads: 4})
		p.Trap("getppid", emulate.Func(func(c *sigsys.Call) sigsys.Result {
			// A handler's own syscalls reach the kernel: no recursion.
			own := syscall.Getppid()
			now := inside.Add(1)
			for {
				m := most.Load()
				if now <= m || most.CompareAndSwap(m, now) {
					break
				}
			}
			if now == 3 {
				close(release)
			}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
				fmt.Fprintf(os.Stderr, "stuck: %+v\n", cgo.ReadServiceState())
				buf := make([]byte, 1<<20)
				os.Stderr.Write(buf[:runtime.Stack(buf, true)])
			}
			inside.Add(-1)
			return sigsys.Return(int64(own))
		}, emulate.Return(fallbackPPID)))
		if _, err := install(p); err != nil {
			return err
		}
		results := make(chan int64, 3)
		for i := 0; i < 3; i++ {
			go func() { results <- CGetppid() }()
		}
		for i := 0; i < 3; i++ {
			if r := <-results; r != int64(realPPID) {
				return fmt.Errorf("handler saw getppid=%d, want the real %d", r, realPPID)
			}
		}
		if most.Load() != 3 {
			return fmt.Errorf("at most %d handlers ran at once, want 3", most.Load())
		}
		return nil
	})

	childtest.Register("go-handler-panic-and-deadline", func() error {
		var logs bytes.Buffer
		var logMu sync.Mutex
		log := logrus.New()
		log.SetOutput(writerFunc(func(b []byte) (int, error) { logMu.Lock(); defer logMu.Unlock(); return logs.Write(b) }))
		p := trap.NewPolicy().GoHandlers(sigsys.ServiceOptions{Threads: 2, Deadline: 50 * time.Millisecond, Logger: log})
		p.Trap("getppid", emulate.Func(func(c *sigsys.Call) sigsys.Result {
			if c.Args[0] == 1 {
				panic("handler bug")
			}
			if c.Args[0] == 2 {
				slowHandlerMarker()
				return sigsys.Return(4321)
			}
			return sigsys.Return(1)
		}, emulate.Return(fallbackPPID)))
		if _, err := install(p); err != nil {
			return err
		}
		if r, _ := CSyscall6(unix.SYS_GETPPID, 1, 0, 0, 0, 0, 0); r != fallbackPPID {
			return fmt.Errorf("after a panic the caller got %d, want the fallback %d", r, fallbackPPID)
		}
		if r, _ := CSyscall6(unix.SYS_GETPPID, 2, 0, 0, 0, 0, 0); r != 4321 {
			return fmt.Errorf("slow handler's caller got %d, want 4321", r)
		}
		if r, _ := CSyscall6(unix.SYS_GETPPID, 0, 0, 0, 0, 0, 0); r != 1 {
			return fmt.Errorf("after all that, got %d", r)
		}
		logMu.Lock()
		out := logs.String()
		logMu.Unlock()
		for _, want := range []string{"Go handler panicked", "panic=\"handler bug\"", "syscall=getppid",
			"past its deadline", "slowHandlerMarker"} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("log lacks %q:\n%s", want, out)
			}
		}
		return nil
	})

	childtest.Register("go-handler-memory", func() error {
		const secret = "/etc/legacy.conf"
		var got []string
		var mu sync.Mutex
		p := trap.NewPolicy()
		p.Trap("chdir", emulate.Func(func(c *sigsys.Call) sigsys.Result {
			s, err := c.String(0)
			mu.Lock()
			got = append(got, fmt.Sprint(s, err))
			mu.Unlock()
			var errno syscall.Errno
			if errors.As(err, &errno) {
				return sigsys.Fail(errno)
			}
			if s == secret {
				// Write back into the caller's buffer, then answer.
				if err := c.Write(0, []byte("/ETC")); err != nil {
					return sigsys.Fail(unix.EIO)
				}
				return sigsys.Return(0)
			}
			return sigsys.Passthrough()
		}, emulate.Passthrough()))
		if _, err := install(p); err != nil {
			return err
		}
		buf := append([]byte(secret), 0)
		if r, err := CSyscall6(unix.SYS_CHDIR, uintptr(unsafe.Pointer(&buf[0])), 0, 0, 0, 0, 0); r != 0 {
			return fmt.Errorf("chdir(secret) = %d %v", r, err)
		}
		if string(buf[:4]) != "/ETC" {
			return fmt.Errorf("handler's write not seen: %q", buf)
		}
		// Bad pointers: EFAULT, and the process lives.
		for _, addr := range []uintptr{1, 0xdead0000} {
			if _, err := CSyscall6(unix.SYS_CHDIR, addr, 0, 0, 0, 0, 0); !errors.Is(err, unix.EFAULT) {
				return fmt.Errorf("chdir(%#x): %v, want EFAULT", addr, err)
			}
		}
		// Too long: ENAMETOOLONG, as the kernel says.
		long := append(bytes.Repeat([]byte("a"), 5000), 0)
		if _, err := CSyscall6(unix.SYS_CHDIR, uintptr(unsafe.Pointer(&long[0])), 0, 0, 0, 0, 0); !errors.Is(err, unix.ENAMETOOLONG) {
			return fmt.Errorf("chdir(5000 bytes): %v, want ENAMETOOLONG", err)
		}
		// A string that ends right before an unmapped page is read whole.
		mem, err := unix.Mmap(-1, 0, 8192, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		if err := unix.Mprotect(mem[4096:], unix.PROT_NONE); err != nil {
			return err
		}
		copy(mem[4096-5:], "/tmp\x00")
		if r, err := CSyscall6(unix.SYS_CHDIR, uintptr(unsafe.Pointer(&mem[4096-5])), 0, 0, 0, 0, 0); r != 0 {
			return fmt.Errorf("chdir(/tmp at page end) = %d %v (handler saw %v)", r, err, got)
		}
		return nil
	})

	childtest.Register("go-handler-fork-child", func() error {
		var calls atomic.Int64
		if _, err := install(goPolicy(&calls)); err != nil {
			return err
		}
		// The child has no service threads: it gets the fallback, no hang.
		if st := CForkCall(unix.SYS_GETPPID, 7, fallbackPPID); st != 0 {
			return fmt.Errorf("fork child status %#x", st)
		}
		// The parent is still served by Go.
		if r, _ := CSyscall6(unix.SYS_GETPPID, 7, 0, 0, 0, 0, 0); r != goBase+7 {
			return fmt.Errorf("parent got %d", r)
		}
		return nil
	})

	childtest.Register("go-handler-refused-syscalls", func() error {
		for _, name := range []string{"mremap", "brk", "getrandom"} {
			p := trap.NewPolicy().Trap(name, emulate.Func(func(*sigsys.Call) sigsys.Result { return sigsys.Passthrough() }, emulate.Passthrough()))
			if _, err := trap.Install(p); !errors.Is(err, trap.ErrUnsafeSyscall) || !strings.Contains(err.Error(), "Go handler") {
				return fmt.Errorf("%s: %v", name, err)
			}
		}
		p := trap.NewPolicy().Trap("brk", emulate.Passthrough()) // in C: fine
		_, err := trap.Install(p)
		return err
	})
}

//go:noinline
func slowHandlerMarker() { time.Sleep(300 * time.Millisecond) }

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func TestGoHandlerNoDeadlock(t *testing.T) {
	for _, procs := range []string{"1", "2"} {
		t.Run("GOMAXPROCS="+procs, func(t *testing.T) {
			r := childtest.MustRun(t, "go-handler-no-deadlock", "GOMAXPROCS="+procs)
			t.Log(strings.TrimSpace(strings.Split(r.Stdout, "SCENARIO-OK")[0]))
		})
	}
}

func TestGoHandlerOwnSyscallsAndConcurrency(t *testing.T) {
	childtest.MustRun(t, "go-handler-own-syscalls-and-concurrency")
}
func TestGoHandlerPanicAndDeadline(t *testing.T) {
	childtest.MustRun(t, "go-handler-panic-and-deadline")
}
func TestGoHandlerMemory(t *testing.T)          { childtest.MustRun(t, "go-handler-memory") }
func TestGoHandlerForkChild(t *testing.T)       { childtest.MustRun(t, "go-handler-fork-child") }
func TestGoHandlerRefusedSyscalls(t *testing.T) { childtest.MustRun(t, "go-handler-refused-syscalls") }
