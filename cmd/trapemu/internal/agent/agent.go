// Package agent runs inside a program started by trapemu: it connects to
// the trapemu process, installs the policy it was given and streams trace
// records. It is linked into the preload shared object.
package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/cgo"
	"github.com/trapemu/trapemu/cmd/trapemu/internal/policyfile"
	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/sigsys"
	"github.com/trapemu/trapemu/sigsys/trace"
	"github.com/trapemu/trapemu/trap"
)

// Hello is the first message a traced process sends.
type Hello struct {
	PID      int    `json:"pid"`
	ExecedBy int    `json:"execed_by,omitempty"`
	Exe      string `json:"exe"`
	Error    string `json:"error,omitempty"`
}

// Environment variables between trapemu and the agent.
const (
	EnvSocket   = "TRAPEMU_SOCKET"
	EnvTrace    = "TRAPEMU_TRACE"
	EnvPolicy   = "TRAPEMU_POLICY"
	EnvFrames   = "TRAPEMU_FRAMES"
	EnvExecedBy = "TRAPEMU_EXECED_BY"
)

// MarkerPath is the path of the marker call the agent makes when its own
// start-up is done and before it installs anything: in an strace of the
// program, what follows it is the program's (see the command's tests).
const MarkerPath = "/trapemu-agent-ready"

// EnvMarkerOnly makes the agent only make the marker call.
const EnvMarkerOnly = "TRAPEMU_MARKER_ONLY"

// Init is called from the shared object's constructor.
func Init() {
	if os.Getenv(EnvMarkerOnly) != "" {
		unix.Faccessat(unix.AT_FDCWD, MarkerPath, unix.F_OK, 0)
		return
	}
	path := os.Getenv(EnvSocket)
	if path == "" {
		return
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trapemu agent:", err)
		return
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		fmt.Fprintln(os.Stderr, "trapemu agent: connect:", err)
		unix.Close(fd)
		return
	}
	hello := Hello{PID: os.Getpid()}
	hello.ExecedBy, _ = strconv.Atoi(os.Getenv(EnvExecedBy))
	hello.Exe, _ = os.Readlink("/proc/self/exe")
	// The agent's own Go runtime (its threads, GC, timers) is not the
	// program: its calls go to the kernel untraced.
	if text, err := sigsys.GoText(); err == nil {
		cgo.SetQuietRange(text.Lo, text.Hi)
	}
	unix.Faccessat(unix.AT_FDCWD, MarkerPath, unix.F_OK, 0)
	p, err := policy()
	if err == nil {
		_, err = trap.Install(p)
	}
	if err != nil {
		hello.Error = err.Error()
	}
	msg, _ := json.Marshal(hello)
	unix.Write(fd, msg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "trapemu agent:", err)
		return
	}
	frames, _ := strconv.Atoi(os.Getenv(EnvFrames))
	cgo.TraceSetSink(fd, os.Getpid())
	_, err = trace.Start(trace.Options{Quiet: true, Frames: frames, Raw: func(b []byte) {
		for {
			_, err := unix.Write(fd, b)
			if err != unix.EINTR {
				return
			}
		}
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "trapemu agent:", err)
	}
}

func policy() (*trap.Policy, error) {
	p := trap.NewPolicy()
	if file := os.Getenv(EnvPolicy); file != "" {
		var err error
		if p, err = policyfile.Load(file); err != nil {
			return nil, err
		}
	}
	switch names := os.Getenv(EnvTrace); names {
	case "":
	case "all":
		p.TraceAll()
	default:
		seen := map[string]bool{}
		for _, name := range strings.Split(names, ",") {
			name = strings.TrimSpace(name)
			seen[name] = true
			p.Trap(name, emulate.Passthrough())
		}
		// exit_group is where the process waits for its last records to
		// leave; trapemu drops its record when it was not asked for.
		if !seen["exit_group"] {
			p.Trap("exit_group", emulate.Passthrough())
		}
	}
	return p, nil
}
