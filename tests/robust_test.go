package tests

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/sigsys/trace"
	"github.com/trapemu/trapemu/trap"
)

func init() {
	// Load: 8 callers of every kind x 100 000 trapped calls, a GC storm,
	// CPU profiling (SIGPROF) and other signals arriving, tracing on.
	childtest.Register("load", func() error {
		if _, err := install(trap.NewPolicy().Trap("getppid", emulate.Return(fakePPID))); err != nil {
			return err
		}
		col := &countSink{}
		tr, err := trace.Start(trace.Options{RingSize: 1 << 12, Quiet: true, Sinks: []trace.Sink{col}})
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(io.Discard); err != nil {
			return err
		}
		sigs := make(chan os.Signal, 64)
		signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGUSR2)
		stop := make(chan struct{})
		var signalsSent atomic.Int64
		go func() { // other signals, all the time
			for {
				select {
				case <-stop:
					return
				case <-sigs:
				default:
				}
				unix.Kill(unix.Getpid(), syscall.SIGUSR1)
				signalsSent.Add(1)
				time.Sleep(100 * time.Microsecond)
			}
		}()
		gcStorm(stop, 5, 1<<20)
		const n = 100000
		var wrong atomic.Int64
		var wg sync.WaitGroup
		goCaller := func(call func() int64) {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if call() != fakePPID {
					wrong.Add(1)
				}
			}
		}
		wg.Add(8)
		for k := 0; k < 2; k++ {
			go goCaller(func() int64 { return int64(syscall.Getppid()) })
			go goCaller(func() int64 {
				r, _, _ := syscall.Syscall(unix.SYS_GETPPID, 0, 0, 0)
				return int64(r)
			})
			go goCaller(CGetppid)
			go func() {
				defer wg.Done()
				if w := CThreads(1, unix.SYS_GETPPID, n, fakePPID); w != 0 {
					wrong.Add(w)
				}
			}()
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(4 * time.Minute):
			return fmt.Errorf("hung")
		}
		close(stop)
		pprof.StopCPUProfile()
		tr.Stop()
		recorded, dropped := col.n.Load(), tr.Dropped()
		fmt.Printf("calls=%d recorded=%d dropped=%d signals=%d\n", 8*n, recorded, dropped, signalsSent.Load())
		if wrong.Load() != 0 {
			return fmt.Errorf("%d wrong answers", wrong.Load())
		}
		// Every call is either recorded or counted as dropped, not lost.
		if recorded+dropped < 8*n+uint64(n/10) { // C threads' libc calls add n/10 each
			return fmt.Errorf("recorded %d + dropped %d < %d calls", recorded, dropped, 8*n)
		}
		if signalsSent.Load() == 0 {
			return fmt.Errorf("no signal was sent")
		}
		return nil
	})

	// A filter installed before ours: the kernel's precedence holds, and
	// a passthrough meets the other filter's verdict.
	childtest.Register("filter-before", func() error {
		runtime.LockOSThread()
		f := []unix.SockFilter{ // getpgid: EACCES; getppid: allowed
			{Code: bpfLdW, K: 0},
			{Code: bpfJeqK, Jt: 0, Jf: 1, K: unix.SYS_GETPGID},
			{Code: bpfRetK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)},
			{Code: bpfRetK, K: unix.SECCOMP_RET_ALLOW},
		}
		if err := loadRaw(f, unix.SECCOMP_FILTER_FLAG_TSYNC); err != nil {
			return err
		}
		runtime.UnlockOSThread()
		p := trap.NewPolicy().Trap("getpgid", emulate.Passthrough()).Trap("getppid", emulate.Return(fakePPID))
		if _, err := install(p); err != nil {
			return err
		}
		if _, _, e := syscall.RawSyscall(unix.SYS_GETPGID, 0, 0, 0); e != unix.EACCES {
			return fmt.Errorf("passthrough of a call the earlier filter fails: %v, want EACCES", e)
		}
		return expect("getppid", int64(syscall.Getppid()), fakePPID)
	})

	// A filter installed after ours (as a container runtime would).
	childtest.Register("filter-after", func() error {
		if _, err := install(trap.NewPolicy().Trap("getppid", emulate.Return(fakePPID)).Trap("getpgid", emulate.Passthrough())); err != nil {
			return err
		}
		runtime.LockOSThread()
		f := []unix.SockFilter{ // getpgid: EPERM; getppid: EACCES (TRAP outranks it)
			{Code: bpfLdW, K: 0},
			{Code: bpfJeqK, Jt: 0, Jf: 1, K: unix.SYS_GETPGID},
			{Code: bpfRetK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
			{Code: bpfJeqK, Jt: 0, Jf: 1, K: unix.SYS_GETPPID},
			{Code: bpfRetK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)},
			{Code: bpfRetK, K: unix.SECCOMP_RET_ALLOW},
		}
		if err := loadRaw(f, unix.SECCOMP_FILTER_FLAG_TSYNC); err != nil {
			return err
		}
		runtime.UnlockOSThread()
		if err := expect("getppid (TRAP beats ERRNO)", int64(syscall.Getppid()), fakePPID); err != nil {
			return err
		}
		if _, _, e := syscall.RawSyscall(unix.SYS_GETPGID, 0, 0, 0); e != unix.EPERM {
			return fmt.Errorf("getpgid: %v, want the later filter's EPERM", e)
		}
		return nil
	})
}

type countSink struct{ n atomic.Uint64 }

func (c *countSink) Write(*trace.Record) { c.n.Add(1) }
func (c *countSink) Close() error        { return nil }

func TestLoad(t *testing.T) {
	r := childtest.MustRun(t, "load")
	t.Log(strings.TrimSpace(strings.Split(r.Stdout, "SCENARIO-OK")[0]))
}
func TestFilterBefore(t *testing.T) { childtest.MustRun(t, "filter-before") }
func TestFilterAfter(t *testing.T)  { childtest.MustRun(t, "filter-after") }

// unsafeWorkload does what makes the unsafe syscalls show: Go threads
// that start and end, C threads, GC, a Go exec, a C fork, signals.
func unsafeWorkload() error {
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // the thread ends with the goroutine
			time.Sleep(time.Millisecond)
		}()
	}
	wg.Wait()
	if CThreads(2, unix.SYS_GETPID, 10, int64(os.Getpid())) != 0 {
		return fmt.Errorf("C threads")
	}
	runtime.GC()
	if err := exec.Command("/bin/true").Run(); err != nil {
		return fmt.Errorf("exec: %v", err)
	}
	CForkCall(unix.SYS_GETPID, 0, 0)
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR2)
	unix.Kill(unix.Getpid(), syscall.SIGUSR2)
	<-c
	return nil
}

func init() {
	for name := range trap.UnsafeSyscalls() {
		name := name
		childtest.Register("unsafe-"+name, func() error {
			// Without the SIGSYS protection (which keeps SIGSYS unblocked and
			// so saves most of these): what the guard is about.
			p := trap.NewPolicy().AllowSIGSYSChanges().AllowUnsafe(name).Trap(name, emulate.Passthrough())
			if _, err := install(p); err != nil {
				return err
			}
			switch name {
			case "clone":
				if r := CRawThreadClone(); r <= 0 {
					return fmt.Errorf("clone: %d", r)
				}
				return nil
			case "vfork":
				if st := CVforkExit(); st != 3<<8 {
					return fmt.Errorf("vfork child status %#x", st)
				}
				return nil
			}
			if name == "rt_sigprocmask" {
				// Made from inside the handler, it sees and changes the
				// handler's mask (every signal), not the caller's, and
				// sigreturn undoes any change.
				var old unix.Sigset_t
				runtime.LockOSThread()
				unix.PthreadSigmask(unix.SIG_BLOCK, nil, &old)
				if old.Val[0]&(1<<(uint(syscall.SIGUSR2)-1)) != 0 {
					return fmt.Errorf("the mask read back has SIGUSR2 blocked, which nobody blocked")
				}
				return nil
			}
			return unsafeWorkload()
		})
	}
}

// TestUnsafeSyscallsGoWrong shows, for each syscall the guard refuses,
// what happens when it is trapped anyway (Policy.AllowUnsafe).
func TestUnsafeSyscallsGoWrong(t *testing.T) {
	// clone is shown with a raw thread clone (glibc 2.36 makes threads
	// with clone3), vfork with a C vfork().
	notShown := map[string]bool{}
	for name := range trap.UnsafeSyscalls() {
		name := name
		t.Run(name, func(t *testing.T) {
			if notShown[name] {
				t.Skipf("%s: not made by this workload on this glibc", name)
			}
			r, hung := childtest.RunMayHang(t, "unsafe-"+name, 20*time.Second)
			if r.OK() && !hung {
				t.Fatalf("trapping %s went unnoticed:\n%v", name, r)
			}
			why := "killed by SIGSYS"
			switch {
			case hung:
				why = "the process hung"
			case r.Signal != syscall.SIGSYS:
				why = fmt.Sprintf("exit %d, signal %v: %s", r.ExitCode, r.Signal, strings.TrimSpace(r.Stderr))
			}
			t.Logf("%s trapped: %s", name, why)
		})
	}
}
