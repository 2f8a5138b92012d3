package tests

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/cgo"
	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/sigsys"
	"github.com/trapemu/trapemu/trap"
)

func TestMain(m *testing.M) { childtest.Main(m) }

const fakePPID = 4242

// corePolicy is the example policy.
func corePolicy() *trap.Policy {
	p := trap.NewPolicy()
	p.Trap("getppid", emulate.Return(fakePPID))
	p.Trap("getpgid", emulate.Passthrough())
	p.Trap("chdir", emulate.Errno(unix.EROFS))
	p.Deny("ptrace", int(unix.EPERM))
	p.Kill("kexec_load")
	return p
}

func install(p *trap.Policy) (*trap.Runtime, error) {
	rt, err := trap.Install(p)
	if err != nil {
		return nil, fmt.Errorf("Install: %w", err)
	}
	return rt, nil
}

func expect(what string, got, want int64) error {
	if got != want {
		return fmt.Errorf("%s = %d, want %d", what, got, want)
	}
	return nil
}

// seccompFilters reads the number of filters on the calling thread.
func seccompFilters() (mode, filters string) {
	b, _ := os.ReadFile("/proc/thread-self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Seccomp:"); ok {
			mode = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "Seccomp_filters:"); ok {
			filters = strings.TrimSpace(v)
		}
	}
	return
}

func init() {
	childtest.Register("go-callers", func() error {
		realPgrp, _, _ := syscall.RawSyscall(unix.SYS_GETPGID, 0, 0, 0)
		rt, err := install(corePolicy())
		if err != nil {
			return err
		}
		// Go raw syscalls (no entersyscall, P held).
		if err := expect("syscall.Getppid", int64(syscall.Getppid()), fakePPID); err != nil {
			return err
		}
		r, _, e := syscall.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
		if err := expect("RawSyscall(getppid)", int64(r), fakePPID); err != nil || e != 0 {
			return fmt.Errorf("%v errno=%v", err, e)
		}
		// syscall.Syscall (entersyscall).
		r, _, e = syscall.Syscall(unix.SYS_GETPPID, 0, 0, 0)
		if err := expect("Syscall(getppid)", int64(r), fakePPID); err != nil || e != 0 {
			return fmt.Errorf("%v errno=%v", err, e)
		}
		// golang.org/x/sys/unix.
		if err := expect("unix.Getppid", int64(unix.Getppid()), fakePPID); err != nil {
			return err
		}
		// Passthrough: the real answer.
		r, _, _ = syscall.RawSyscall(unix.SYS_GETPGID, 0, 0, 0)
		if err := expect("getpgid (passthrough)", int64(r), int64(realPgrp)); err != nil {
			return err
		}
		// Errno.
		if err := unix.Chdir("/"); !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("unix.Chdir = %v, want EROFS", err)
		}
		// Deny: the kernel answers, no signal.
		before := cgo.ReadGlobalStats().Traps
		_, _, e = syscall.Syscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
		if e != unix.EPERM {
			return fmt.Errorf("ptrace errno = %v, want EPERM", e)
		}
		if after := cgo.ReadGlobalStats().Traps; after != before {
			return fmt.Errorf("a Deny rule raised %d traps", after-before)
		}
		// Exact per-rule counts.
		st := rt.Stats()
		want := []uint64{4, 1, 1, 0, 0}
		for i, w := range want {
			if st.Rules[i].Hits != w {
				return fmt.Errorf("rule %d %s: %d hits, want %d", i+1, st.Rules[i].Desc, st.Rules[i].Hits, w)
			}
		}
		if st.Rules[3].Counted || st.Rules[4].Counted || !st.Rules[0].Counted {
			return fmt.Errorf("Counted flags wrong: %+v", st.Rules)
		}
		return nil
	})

	childtest.Register("c-callers", func() error {
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		if err := expect("C getppid()", CGetppid(), fakePPID); err != nil {
			return err
		}
		if e := CChdirErrno("/"); e != int(unix.EROFS) {
			return fmt.Errorf("C chdir errno = %d, want EROFS", e)
		}
		if wrong := CLoop(unix.SYS_GETPPID, 10000, fakePPID); wrong != 0 {
			return fmt.Errorf("C loop: %d wrong answers", wrong)
		}
		// pthreads created after Install.
		if wrong := CThreads(8, unix.SYS_GETPPID, 5000, fakePPID); wrong != 0 {
			return fmt.Errorf("C threads: %d wrong answers", wrong)
		}
		return nil
	})

	childtest.Register("new-go-threads", func() error {
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		tidsBefore := threadIDs()
		var wrong, started atomic.Int64
		var wg sync.WaitGroup
		seen := sync.Map{}
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A locked goroutine that exits takes its thread with it, so
				// the runtime keeps creating new OS threads.
				runtime.LockOSThread()
				seen.Store(unix.Gettid(), true)
				started.Add(1)
				for k := 0; k < 1000; k++ {
					if syscall.Getppid() != fakePPID {
						wrong.Add(1)
					}
				}
				time.Sleep(time.Millisecond)
			}()
		}
		wg.Wait()
		newThreads := 0
		seen.Range(func(k, _ any) bool {
			if !tidsBefore[k.(int)] {
				newThreads++
			}
			return true
		})
		if newThreads == 0 {
			return fmt.Errorf("no OS thread was created after Install; the test proves nothing")
		}
		if wrong.Load() != 0 {
			return fmt.Errorf("%d wrong answers on %d new threads", wrong.Load(), newThreads)
		}
		return nil
	})

	childtest.Register("storm", func() error {
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		stop := make(chan struct{})
		gcs := gcStorm(stop, 1, 1<<20)
		for gcs.Load() < 1 {
			runtime.Gosched()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		gcBefore := ms.NumGC
		const perWorker = 50000
		var wrong atomic.Int64
		var wg sync.WaitGroup
		worker := func(call func() int64) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				if call() != fakePPID {
					wrong.Add(1)
				}
				if i%5000 == 0 {
					runtime.Gosched() // let the storm in, even with GOMAXPROCS=1
				}
			}
		}
		wg.Add(4)
		go worker(func() int64 { return int64(syscall.Getppid()) }) // raw, P held
		go worker(func() int64 {
			r, _, _ := syscall.Syscall(unix.SYS_GETPPID, 0, 0, 0) // entersyscall
			return int64(r)
		})
		go worker(CGetppid) // cgo
		go func() {         // pthreads
			defer wg.Done()
			if w := CThreads(4, unix.SYS_GETPPID, perWorker/4, fakePPID); w != 0 {
				wrong.Add(w)
			}
		}()
		wg.Wait()
		runtime.ReadMemStats(&ms)
		close(stop)
		gcs.Store(int64(ms.NumGC - gcBefore))
		total := cgo.ReadGlobalStats().Traps
		if wrong.Load() != 0 {
			return fmt.Errorf("%d wrong answers", wrong.Load())
		}
		if total < 100000 {
			return fmt.Errorf("only %d trapped calls", total)
		}
		if gcs.Load() < 3 {
			return fmt.Errorf("only %d GCs ran during the storm", gcs.Load())
		}
		fmt.Printf("traps=%d gcs=%d\n", total, gcs.Load())
		return nil
	})

	childtest.Register("kill-rule", func() error {
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		syscall.Syscall(unix.SYS_KEXEC_LOAD, 0, 0, 0)
		return fmt.Errorf("still alive after kexec_load")
	})

	childtest.Register("foreign-arch-kill", func() error {
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		CInt80(64) // i386 getppid
		return fmt.Errorf("still alive after int 0x80")
	})

	childtest.Register("foreign-arch-errno", func() error {
		p := corePolicy().OnForeignArch(trap.FailWith(int(unix.ENOSYS)))
		if _, err := install(p); err != nil {
			return err
		}
		return expect("int 0x80 getppid", CInt80(64), -int64(unix.ENOSYS))
	})

	childtest.Register("kill-sigsys-is-not-a-trap", func() error {
		rt, err := install(corePolicy())
		if err != nil {
			return err
		}
		runtime.LockOSThread()
		if err := unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGSYS); err != nil {
			return err
		}
		if err := unix.Kill(unix.Getpid(), unix.SIGSYS); err != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
		st := rt.Stats()
		if st.Handler.NotTraps != 2 || st.Handler.UnknownTag != 0 || st.Handler.BadFrame != 0 || st.Rules[0].Hits != 0 {
			return fmt.Errorf("handler stats %+v, want 2 ignored signals and no getppid answered", st)
		}
		return expect("getppid after", int64(syscall.Getppid()), fakePPID)
	})

	childtest.Register("second-install-stacks", func() error {
		rt1, err := install(trap.NewPolicy().Trap("getppid", emulate.Return(1)).Trap("getuid", emulate.Return(11)))
		if err != nil {
			return err
		}
		rt2, err := install(trap.NewPolicy().Trap("getppid", emulate.Return(2)).Trap("getgid", emulate.Return(22)).Deny("getuid", int(unix.EACCES)))
		if err != nil {
			return err
		}
		if err := expect("getppid (both trap: newest answers)", int64(syscall.Getppid()), 2); err != nil {
			return err
		}
		if err := expect("getgid (second only)", int64(syscall.Getgid()), 22); err != nil {
			return err
		}
		// TRAP outranks ERRNO: the first policy's trap answers getuid.
		if err := expect("getuid (trap beats errno)", int64(syscall.Getuid()), 11); err != nil {
			return err
		}
		if h := rt2.Stats().Rules[0].Hits; h != 1 {
			return fmt.Errorf("second policy getppid hits %d", h)
		}
		if h := rt1.Stats().Rules[0].Hits; h != 0 {
			return fmt.Errorf("first policy getppid hits %d", h)
		}
		_, filters := seccompFilters()
		return expect("Seccomp_filters", int64(atoi(filters)), 2)
	})

	childtest.Register("bad-policy-installs-nothing", func() error {
		before := SIGSYSHandler()
		bad := []*trap.Policy{
			trap.NewPolicy().Trap("getppid", emulate.Return(1)).Trap("not_a_syscall", emulate.Return(1)),
			trap.NewPolicy().Trap("getppid", emulate.Return(1)).Trap("getppid", emulate.Return(1)),
			trap.NewPolicy().Trap("getppid", emulate.Return(1), trap.Arg(0).Eq(1)).Trap("getppid", emulate.Return(2), trap.Arg(0).Eq(1)),
			trap.NewPolicy().Deny("ptrace", 0),
			trap.NewPolicy().Deny("ptrace", 4096),
			trap.NewPolicy().Trap("chdir", emulate.Errno(5000)),
			trap.NewPolicy().Trap("rt_sigreturn", emulate.Passthrough()),
			trap.NewPolicy().Trap("mmap", emulate.Passthrough()),
			tooLong(),
			tooManyActions(),
		}
		wants := []error{trap.ErrUnknownSyscall, trap.ErrDuplicateRule, trap.ErrConflictingRule, trap.ErrBadErrno, trap.ErrBadErrno,
			trap.ErrBadErrno, trap.ErrUnsafeSyscall, trap.ErrUnsafeSyscall, trap.ErrProgramTooLong, trap.ErrTooManyActions}
		for i, p := range bad {
			_, err := trap.Install(p)
			if !errors.Is(err, wants[i]) {
				return fmt.Errorf("policy %d: got %v, want %v", i, err, wants[i])
			}
			fmt.Println(err)
		}
		if mode, filters := seccompFilters(); mode != "0" || filters != "0" {
			return fmt.Errorf("after refused policies: Seccomp %s, filters %s", mode, filters)
		}
		if SIGSYSHandler() != before || cgo.HandlerActive() {
			return fmt.Errorf("SIGSYS disposition changed by a refused policy")
		}
		if err := expect("getppid", int64(syscall.Getppid()), int64(os.Getppid())); err != nil {
			return err
		}
		// And a good policy still installs afterwards.
		if _, err := install(corePolicy()); err != nil {
			return err
		}
		return expect("getppid", int64(syscall.Getppid()), fakePPID)
	})

	childtest.Register("seccomp-unavailable", func() error {
		// An outer filter (as a sandbox might have) makes seccomp(2) fail
		// with ENOSYS, as on a kernel without it.
		if err := rawFilterDenySeccomp(); err != nil {
			return err
		}
		before := SIGSYSHandler()
		_, err := trap.Install(corePolicy())
		if !errors.Is(err, trap.ErrSeccompUnavailable) {
			return fmt.Errorf("got %v, want ErrSeccompUnavailable", err)
		}
		fmt.Println(err)
		if SIGSYSHandler() != before || cgo.HandlerActive() {
			return fmt.Errorf("SIGSYS disposition changed")
		}
		if _, filters := seccompFilters(); filters != "1" {
			return fmt.Errorf("Seccomp_filters %s, want only the outer 1", filters)
		}
		return nil
	})

	childtest.Register("tsync-failure", func() error {
		// One thread gets a filter of its own: its filter tree diverges.
		tidc := make(chan int)
		hold := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			if err := rawAllowFilterThisThread(); err != nil {
				fmt.Println("own filter:", err)
				tidc <- -1
				return
			}
			tidc <- unix.Gettid()
			<-hold
		}()
		tid := <-tidc
		defer close(hold)
		if tid < 0 {
			return fmt.Errorf("could not set up a diverging thread")
		}
		before := SIGSYSHandler()
		_, err := trap.Install(corePolicy())
		var tse *trap.ThreadSyncError
		if !errors.As(err, &tse) || tse.TID != tid {
			return fmt.Errorf("got %v, want ThreadSyncError for thread %d", err, tid)
		}
		fmt.Println(err)
		if SIGSYSHandler() != before || cgo.HandlerActive() {
			return fmt.Errorf("SIGSYS disposition not restored")
		}
		if _, filters := seccompFilters(); filters != "0" {
			return fmt.Errorf("calling thread has %s filters, want 0", filters)
		}
		return expect("getppid", int64(syscall.Getppid()), int64(os.Getppid()))
	})
}

// gcStorm allocates size bytes and collects, over and over, with the GC
// percent set low, until stop is closed; it counts the collections it forced.
func gcStorm(stop <-chan struct{}, percent, size int) *atomic.Int64 {
	debug.SetGCPercent(percent)
	var gcs atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = make([]byte, size)
			runtime.GC()
			gcs.Add(1)
		}
	}()
	return &gcs
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}

func tooLong() *trap.Policy {
	p := trap.NewPolicy()
	for i := 0; i < 400; i++ {
		p.Trap("socket", emulate.Return(1), trap.Arg(0).Eq(uint64(i)), trap.Arg(1).Ge(uint64(i)), trap.Arg(2).Le(uint64(i)+1))
	}
	return p
}

func tooManyActions() *trap.Policy {
	p := trap.NewPolicy()
	for i := 0; i < 65536; i++ {
		p.Trap("getppid", emulate.Return(int64(i)), trap.Arg(0).Eq(uint64(i)))
	}
	return p
}

func threadIDs() map[int]bool {
	out := map[int]bool{}
	ents, _ := os.ReadDir("/proc/self/task")
	for _, e := range ents {
		out[atoi(e.Name())] = true
	}
	return out
}

// loadRaw installs a raw filter on the calling thread only (no TSYNC).
func loadRaw(filter []unix.SockFilter, flags uintptr) error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if e != 0 {
		return e
	}
	if r != 0 {
		return fmt.Errorf("seccomp returned %d", r)
	}
	return nil
}

const (
	bpfLdW  = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfJeqK = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfRetK = unix.BPF_RET | unix.BPF_K
)

// rawFilterDenySeccomp loads, on every thread, a filter that fails
// seccomp(2) and prctl(2) with ENOSYS and EINVAL.
func rawFilterDenySeccomp() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f := []unix.SockFilter{
		{Code: bpfLdW, K: 0},
		{Code: bpfJeqK, Jt: 0, Jf: 1, K: unix.SYS_SECCOMP},
		{Code: bpfRetK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{Code: bpfJeqK, Jt: 0, Jf: 1, K: unix.SYS_PRCTL},
		{Code: bpfRetK, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EINVAL)},
		{Code: bpfRetK, K: unix.SECCOMP_RET_ALLOW},
	}
	return loadRaw(f, unix.SECCOMP_FILTER_FLAG_TSYNC)
}

// rawAllowFilterThisThread gives the calling thread an allow-all filter.
func rawAllowFilterThisThread() error {
	return loadRaw([]unix.SockFilter{{Code: bpfRetK, K: unix.SECCOMP_RET_ALLOW}}, 0)
}

func TestGoCallers(t *testing.T)           { childtest.MustRun(t, "go-callers") }
func TestCCallersAndPthreads(t *testing.T) { childtest.MustRun(t, "c-callers") }
func TestNewGoThreads(t *testing.T)        { childtest.MustRun(t, "new-go-threads") }
func TestKillSIGSYSIsNotATrap(t *testing.T) {
	childtest.MustRun(t, "kill-sigsys-is-not-a-trap")
}
func TestSecondInstallStacks(t *testing.T)      { childtest.MustRun(t, "second-install-stacks") }
func TestBadPolicyInstallsNothing(t *testing.T) { childtest.MustRun(t, "bad-policy-installs-nothing") }
func TestSeccompUnavailable(t *testing.T)       { childtest.MustRun(t, "seccomp-unavailable") }
func TestTSyncFailure(t *testing.T)             { childtest.MustRun(t, "tsync-failure") }

func TestStorm(t *testing.T) {
	for _, procs := range []string{"1", "2"} {
		t.Run("GOMAXPROCS="+procs, func(t *testing.T) {
			r := childtest.MustRun(t, "storm", "GOMAXPROCS="+procs)
			t.Log(strings.TrimSpace(strings.Split(r.Stdout, "SCENARIO-OK")[0]))
		})
	}
}

// expectSIGSYSDeath runs a scenario that must be killed by the kernel.
func expectSIGSYSDeath(t *testing.T, name string) {
	r := childtest.Run(t, name, time.Minute)
	if r.Signal != syscall.SIGSYS {
		t.Fatalf("%s: want death by SIGSYS, got\n%v", name, r)
	}
}

func TestKillRule(t *testing.T) { expectSIGSYSDeath(t, "kill-rule") }

func TestKillAction(t *testing.T) { expectSIGSYSDeath(t, "kill-action") }

func init() {
	childtest.Register("kill-action", func() error {
		p := trap.NewPolicy().Trap("getppid", emulate.Func(func(*sigsys.Call) sigsys.Result {
			return sigsys.Return(1)
		}, emulate.Kill()))
		if _, err := install(p); err != nil {
			return err
		}
		syscall.Getppid() // Go code: the fallback answers, and kills
		return fmt.Errorf("still alive after the Kill fallback")
	})
}

func TestForeignArchKilledByDefault(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("int 0x80 is amd64's")
	}
	expectSIGSYSDeath(t, "foreign-arch-kill")
}

func TestForeignArchErrno(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("int 0x80 is amd64's")
	}
	childtest.MustRun(t, "foreign-arch-errno")
}

func init() {
	childtest.Register("uname-copyout", func() error {
		if _, err := install(trap.NewPolicy().Trap("uname", emulate.Uname(emulate.UTS{Nodename: "box", Release: "2.6.32"}))); err != nil {
			return err
		}
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return err
		}
		if got := unix.ByteSliceToString(u.Nodename[:]); got != "box" {
			return fmt.Errorf("nodename %q", got)
		}
		if got := unix.ByteSliceToString(u.Release[:]); got != "2.6.32" {
			return fmt.Errorf("release %q", got)
		}
		if got := unix.ByteSliceToString(u.Sysname[:]); got != "Linux" {
			return fmt.Errorf("sysname %q (should stay real)", got)
		}
		// A bad pointer gets EFAULT, like the kernel, and no crash.
		for _, addr := range []uintptr{1, 0xffff_ffff_ffff_f000} {
			_, _, e := syscall.RawSyscall(unix.SYS_UNAME, addr, 0, 0)
			if e != unix.EFAULT {
				return fmt.Errorf("uname(%#x) errno %v, want EFAULT", addr, e)
			}
		}
		// A read-only page: the kernel's copy_to_user fails too.
		ro, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		_, _, e := syscall.RawSyscall(unix.SYS_UNAME, uintptr(unsafe.Pointer(&ro[0])), 0, 0)
		if e != unix.EFAULT {
			return fmt.Errorf("uname(read-only page) errno %v, want EFAULT", e)
		}
		return nil
	})
}

func TestUnameCopyOut(t *testing.T) { childtest.MustRun(t, "uname-copyout") }
