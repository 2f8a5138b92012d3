package tests

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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

func init() {
	childtest.Register("protect-blocked-sigsys", func() error {
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		r, sysBlocked, usr1Blocked := CBlockSIGSYSAndCall(unix.SYS_GETPPID)
		if r != fakePPID {
			return fmt.Errorf("getppid with SIGSYS \"blocked\" = %d", r)
		}
		if sysBlocked || !usr1Blocked {
			return fmt.Errorf("mask read back: SIGSYS blocked %v (want false), SIGUSR1 blocked %v (want true)", sysBlocked, usr1Blocked)
		}
		if r := CCallInFullMaskHandler(); r != fakePPID {
			return fmt.Errorf("getppid in a handler masking every signal = %d", r)
		}
		return nil
	})

	childtest.Register("protect-posix-spawn-file-actions", func() error {
		// posix_spawn's child runs its dup2/close file actions with every
		// signal blocked — but SIGSYS, now.
		p := trap.NewPolicy()
		for _, name := range []string{"close", "dup2", "dup3", "openat", "read"} {
			if _, ok := p.Arch().SyscallNumber(name); ok {
				p.Trap(name, emulate.Passthrough())
			}
		}
		if _, err := install(p); err != nil {
			return err
		}
		out, st := CPosixSpawn("/bin/sh", "-c", "echo spawned; exit 6")
		if ws := syscall.WaitStatus(st); out != "spawned\n" || !ws.Exited() || ws.ExitStatus() != 6 {
			return fmt.Errorf("posix_spawn: %q status %#x", out, st)
		}
		return nil
	})

	// Install while threads are being created and ending all the time:
	// none may be caught in a window with SIGSYS blocked.
	childtest.Register("protect-install-under-thread-churn", func() error {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					done := make(chan struct{})
					go func() { runtime.LockOSThread(); close(done) }() // the thread ends with it
					<-done
					CThreads(1, unix.SYS_GETPID, 1, int64(unix.Getpid()))
				}
			}()
		}
		time.Sleep(20 * time.Millisecond)
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		close(stop)
		wg.Wait()
		return expect("getppid", CGetppid(), fakePPID)
	})
}

func TestProtectBlockedSIGSYS(t *testing.T) { childtest.MustRun(t, "protect-blocked-sigsys") }
func TestProtectPosixSpawnFileActions(t *testing.T) {
	childtest.MustRun(t, "protect-posix-spawn-file-actions")
}
func TestProtectInstallUnderThreadChurn(t *testing.T) {
	for i := 0; i < 20; i++ {
		childtest.MustRun(t, "protect-install-under-thread-churn")
	}
}
