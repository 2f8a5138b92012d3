package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/trap"
)

// execPolicy traps calls every program's loader and libc make: a program
// that inherited the filter without the handler would die at once.
func execPolicy() *trap.Policy {
	p := trap.NewPolicy()
	p.Trap("getppid", emulate.Return(fakePPID))
	for _, name := range []string{"openat", "read", "close", "fstat", "newfstatat", "dup2", "dup3", "write", "brk"} {
		if _, ok := p.Arch().SyscallNumber(name); ok {
			p.Trap(name, emulate.Passthrough())
		}
	}
	return p
}

func init() {
	childtest.Register("exec-os-exec", func() error {
		rt, err := install(execPolicy())
		if err != nil {
			return err
		}
		// Output, stdin, environment, exit status.
		cmd := exec.Command("/bin/sh", "-c", `read x; echo "got $x, FOO=$FOO"; cat /etc/hostname >/dev/null; exit 3`)
		cmd.Stdin = strings.NewReader("hello\n")
		cmd.Env = append(os.Environ(), "FOO=bar")
		out, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			return fmt.Errorf("exit: %v", err)
		}
		if got := strings.TrimSpace(string(out)); got != "got hello, FOO=bar" {
			return fmt.Errorf("output %q", got)
		}
		// Stderr, and a program killed by a signal.
		cmd = exec.Command("/bin/sh", "-c", `echo oops >&2; kill -TERM $$`)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err = cmd.Run()
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
			return fmt.Errorf("killed program: %v", err)
		}
		if stderr.String() != "oops\n" {
			return fmt.Errorf("stderr %q", stderr.String())
		}
		// A missing program: the error the kernel gives.
		if err := exec.Command("/nonexistent/program").Run(); !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("missing program: %v", err)
		}
		// The new program runs outside the policy: its getppid is real.
		out, err = exec.Command("/bin/sh", "-c", `echo $PPID`).Output()
		if err != nil || strings.TrimSpace(string(out)) == fmt.Sprint(fakePPID) {
			return fmt.Errorf("child sees ppid %q (%v)", out, err)
		}
		if syscall.Getppid() != fakePPID {
			return fmt.Errorf("the policy is gone from the parent")
		}
		_ = rt
		return nil
	})

	childtest.Register("exec-c-fork-exec", func() error {
		if _, err := install(execPolicy()); err != nil {
			return err
		}
		out, st := CForkExec("/bin/sh", "-c", "echo from fork+execve; exit 5")
		ws := syscall.WaitStatus(st)
		if out != "from fork+execve\n" || !ws.Exited() || ws.ExitStatus() != 5 {
			return fmt.Errorf("fork+execve: %q, status %#x", out, st)
		}
		return nil
	})

	childtest.Register("exec-posix-spawn", func() error {
		// posix_spawn's child runs its file actions with every signal
		// blocked: trapping dup2/close there would kill it. This policy
		// traps what the loader does, not those.
		p := trap.NewPolicy().Trap("getppid", emulate.Return(fakePPID)).Trap("openat", emulate.Passthrough()).Trap("brk", emulate.Passthrough())
		if _, err := install(p); err != nil {
			return err
		}
		out, st := CPosixSpawn("/bin/sh", "-c", "echo from posix_spawn; exit 4")
		ws := syscall.WaitStatus(st)
		if out != "from posix_spawn\n" || !ws.Exited() || ws.ExitStatus() != 4 {
			return fmt.Errorf("posix_spawn: %q, status %#x", out, st)
		}
		return nil
	})

	childtest.Register("exec-direct-dies", func() error {
		if _, err := install(execPolicy().ExecDirect()); err != nil {
			return err
		}
		out, err := exec.Command("/bin/echo", "hi").CombinedOutput()
		return fmt.Errorf("ExecDirect: %q %v", out, err)
	})
}

func TestExecOSExec(t *testing.T)     { childtest.MustRun(t, "exec-os-exec") }
func TestExecCForkExec(t *testing.T)  { childtest.MustRun(t, "exec-c-fork-exec") }
func TestExecPosixSpawn(t *testing.T) { childtest.MustRun(t, "exec-posix-spawn") }

// Without the spawner the new program inherits the filter and dies: what
// exec support is for.
func TestExecDirectDies(t *testing.T) {
	r := childtest.Run(t, "exec-direct-dies", 60e9)
	if !strings.Contains(r.Stderr, "signal: bad system call") {
		t.Fatalf("want the exec'd program killed by SIGSYS:\n%v", r)
	}
}
