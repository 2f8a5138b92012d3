package tests

import (
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/cgo"
	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/trap"
)

func init() {
	// Go's os/exec child resets every handler Go installed, SIGSYS among
	// them, before it dup3()s the child's stdio into place: with dup3
	// trapped, the child dies of SIGSYS unless the guard keeps the handler.
	for _, guarded := range []bool{true, false} {
		guarded := guarded
		childtest.Register(fmt.Sprintf("guard-os-exec-%v", guarded), func() error {
			p := trap.NewPolicy().Trap("dup3", emulate.Passthrough())
			if !guarded {
				p.AllowSIGSYSChanges()
			}
			rt, err := install(p)
			if err != nil {
				return err
			}
			out, err := exec.Command("/bin/echo", "child ran").Output()
			if err != nil {
				return fmt.Errorf("os/exec: %v", err)
			}
			if strings.TrimSpace(string(out)) != "child ran" {
				return fmt.Errorf("output %q", out)
			}
			if rt.Stats().Rules[0].Hits == 0 {
				return fmt.Errorf("the child's dup3 calls were not trapped")
			}
			return nil
		})
	}

	childtest.Register("guard-c-sigaction", func() error {
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		r, kept := CSetSIGSYS()
		if r != 0 || !kept || !cgo.HandlerActive() {
			return fmt.Errorf("sigaction(SIGSYS) = %d, trapemu's handler kept: %v", r, kept)
		}
		return expect("getppid after", CGetppid(), fakePPID)
	})
}

func TestGuardKeepsHandlerInOSExecChild(t *testing.T) {
	childtest.MustRun(t, "guard-os-exec-true")
	// Without the guard, the same run fails: what the guard is for.
	r := childtest.Run(t, "guard-os-exec-false", 60e9)
	if r.OK() || !strings.Contains(r.Stderr, "bad system call") {
		t.Fatalf("without the guard the child should die of SIGSYS:\n%v", r)
	}
}

func TestGuardCSigaction(t *testing.T) { childtest.MustRun(t, "guard-c-sigaction") }

func init() {
	// Go's handlers mask every signal; their own syscalls (the crash
	// report's writes, re-raising, exit_group) are trapped under TraceAll.
	// Install unmasks SIGSYS in them, so a Go crash stays a Go crash.
	childtest.Register("crash-in-go-handler", func() error {
		if _, err := install(trap.NewPolicy().TraceAll()); err != nil {
			return err
		}
		unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGABRT)
		select {}
	})
}

func TestCrashInGoHandlerStaysGoCrash(t *testing.T) {
	r := childtest.Run(t, "crash-in-go-handler", 60e9)
	if r.Signal == syscall.SIGSYS || !strings.Contains(r.Stderr, "SIGABRT: abort") || r.ExitCode != 2 {
		t.Fatalf("want Go's SIGABRT crash (exit 2), got\n%v", r)
	}
}
