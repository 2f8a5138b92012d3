package tests

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/sigsys"
	"github.com/trapemu/trapemu/sigsys/trace"
	"github.com/trapemu/trapemu/trap"
)

// The benchmarks time a C loop of inline getppid syscalls in a child
// process (each variant needs its own filter), and report the loop's time
// per call as ns/op, plus x-floor: the ratio to the C-only floor handler
// measured in the same run.

const benchNr = unix.SYS_GETPPID

// benchVariants set up a child for one benchmark and say what getppid answers.
var benchVariants = map[string]func() (want int64, err error){
	"native": func() (int64, error) { return int64(os.Getppid()), nil },
	"floor": func() (int64, error) {
		// The same filter shape as trapemu's, with a handler that only
		// writes the return register.
		p := trap.NewPolicy().Trap("getppid", emulate.Return(fakePPID))
		if _, err := trap.Install(p); err != nil {
			return 0, err
		}
		if !InstallFloorHandler() {
			return 0, fmt.Errorf("sigaction failed")
		}
		return fakePPID, nil
	},
	"Return": func() (int64, error) {
		_, err := trap.Install(trap.NewPolicy().Trap("getppid", emulate.Return(fakePPID)))
		return fakePPID, err
	},
	"Errno": func() (int64, error) {
		_, err := trap.Install(trap.NewPolicy().Trap("getppid", emulate.Errno(unix.EACCES)))
		return -int64(unix.EACCES), err
	},
	"GoHandler": func() (int64, error) {
		p := trap.NewPolicy().Trap("getppid", emulate.Func(func(*sigsys.Call) sigsys.Result {
			return sigsys.Return(fakePPID)
		}, emulate.Return(-1))) // a fallback answer would show as wrong
		_, err := trap.Install(p)
		return fakePPID, err
	},
	"RedirectPath": func() (int64, error) {
		// getppid takes no path: the action declines and the call is made
		// for real; the cost of a path action that finds nothing to do.
		want := int64(os.Getppid())
		_, err := trap.Install(trap.NewPolicy().Trap("getppid", emulate.RedirectPath("/a", "/b")))
		return want, err
	},
	"Traced": func() (int64, error) {
		if _, err := trap.Install(trap.NewPolicy().Trap("getppid", emulate.Return(fakePPID))); err != nil {
			return 0, err
		}
		_, err := trace.Start(trace.Options{RingSize: 1 << 16, Quiet: true, Sinks: []trace.Sink{trace.NewSummary(io.Discard)}})
		return fakePPID, err
	},
	"UserNotify": func() (int64, error) {
		if !InstallUserNotify() {
			return 0, fmt.Errorf("user-notify setup failed")
		}
		return fakePPID, nil
	},
	"strace": func() (int64, error) { return int64(os.Getppid()), nil }, // run under strace -f
	"Passthrough": func() (int64, error) {
		want := int64(os.Getppid())
		_, err := trap.Install(trap.NewPolicy().Trap("getppid", emulate.Passthrough()))
		return want, err
	},
}

// timedLoop is a benchmark child's measurement: loop(n) makes n calls and
// returns the wrong answers; BENCH_N calls are timed after a warm-up, and
// the time and the Go heap allocations are printed for the parent.
func timedLoop(loop func(n int64) int64) error {
	n, _ := strconv.ParseInt(os.Getenv("BENCH_N"), 10, 64)
	loop(n/10 + 1) // warm up
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	wrong := loop(n)
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	if wrong != 0 {
		return fmt.Errorf("%d wrong answers", wrong)
	}
	fmt.Printf("elapsed=%d\nmallocs=%d\n", elapsed.Nanoseconds(), after.Mallocs-before.Mallocs)
	return nil
}

// benchN is the number of calls a child makes for b: one child start
// must buy enough calls.
func benchN(b *testing.B) int { return max(b.N, 1000) }

// childPerCall runs scenario with variant for n calls (under wrapper, if
// any) and returns the time and the Go allocations per call.
func childPerCall(b *testing.B, scenario, variant string, n int, wrapper []string) (ns, mallocs float64) {
	r := childtest.RunWrapped(b, scenario, 10*time.Minute, wrapper, "BENCH_VARIANT="+variant, fmt.Sprintf("BENCH_N=%d", n))
	if !r.OK() {
		b.Fatalf("bench child %s %s: %v", scenario, variant, r)
	}
	ns = -1
	for _, line := range strings.Split(r.Stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "elapsed="); ok {
			x, _ := strconv.ParseFloat(v, 64)
			ns = x / float64(n)
		}
		if v, ok := strings.CutPrefix(line, "mallocs="); ok {
			x, _ := strconv.ParseFloat(v, 64)
			mallocs = x / float64(n)
		}
	}
	if ns < 0 {
		b.Fatalf("no elapsed= in %q", r.Stdout)
	}
	return ns, mallocs
}

func init() {
	childtest.Register("bench", func() error {
		want, err := benchVariants[os.Getenv("BENCH_VARIANT")]()
		if err != nil {
			return err
		}
		return timedLoop(func(n int64) int64 { return CLoop(benchNr, n, want) })
	})
}

// benchChild runs n getppid calls in a child set up as variant; it returns
// ns/call and reports the Go heap allocations per call.
func benchChild(b *testing.B, variant string, n int) float64 {
	var wrapper []string
	if variant == "strace" {
		if _, err := exec.LookPath("strace"); err != nil {
			b.Skip("strace is not installed")
		}
		wrapper = []string{"strace", "-f", "-qq", "-o", os.DevNull}
	}
	ns, mallocs := childPerCall(b, "bench", variant, n, wrapper)
	if variant != "floor" {
		b.ReportMetric(mallocs, "goallocs/op") // Go heap allocations in the caller process, per trapped call
	}
	return ns
}

// BenchmarkGetppid measures one getppid call answered each way.
func BenchmarkGetppid(b *testing.B) {
	for _, v := range []string{"native", "floor", "Return", "Errno", "Passthrough", "RedirectPath", "GoHandler", "Traced", "UserNotify", "strace"} {
		b.Run(v, func(b *testing.B) {
			n := benchN(b)
			var floor float64
			if v != "floor" && v != "native" {
				floor = benchChild(b, "floor", n)
			}
			per := benchChild(b, v, n)
			b.ReportMetric(per, "ns/op")
			if floor > 0 {
				b.ReportMetric(per/floor, "x-floor")
			}
		})
	}
}

// untrappedVariants measure a syscall no rule names (getpid) with no
// filter, a small policy and a 300-rule one: the kernel's constant-action
// cache should make the filter free for it.
var untrappedVariants = map[string]func() error{
	"nofilter": func() error { return nil },
	// The kernel's own price for a process with any filter at all.
	"allowall": func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		return loadRaw([]unix.SockFilter{{Code: bpfRetK, K: unix.SECCOMP_RET_ALLOW}}, unix.SECCOMP_FILTER_FLAG_TSYNC)
	},
	"small": func() error {
		_, err := trap.Install(trap.NewPolicy().Trap("getppid", emulate.Return(1)))
		return err
	},
	"300rules": func() error {
		p := trap.NewPolicy()
		n := 0
		for _, name := range p.Arch().Syscalls() {
			if n == 300 {
				break
			}
			if _, bad := trap.UnsafeSyscalls()[name]; bad || name == "getpid" || strings.HasPrefix(name, "exec") ||
				name == "exit_group" || name == "rt_sigaction" || name == "futex" {
				continue
			}
			p.Trap(name, emulate.Passthrough(), trap.Arg(5).Eq(0xdeadbeef)) // never matches: calls pass
			n++
		}
		_, err := trap.Install(p)
		return err
	},
}

func init() {
	childtest.Register("bench-untrapped", func() error {
		if err := untrappedVariants[os.Getenv("BENCH_VARIANT")](); err != nil {
			return err
		}
		want := int64(os.Getpid())
		return timedLoop(func(n int64) int64 { return CLoop(unix.SYS_GETPID, n, want) })
	})
}

// BenchmarkUntrapped measures getpid, which no rule names, per policy.
func BenchmarkUntrapped(b *testing.B) {
	for _, v := range []string{"nofilter", "allowall", "small", "300rules"} {
		b.Run(v, func(b *testing.B) {
			n := benchN(b)
			ns := func(variant string) float64 {
				ns, _ := childPerCall(b, "bench-untrapped", variant, n, nil)
				return ns
			}
			base := 0.0
			if v != "nofilter" {
				base = ns("nofilter")
			}
			per := ns(v)
			b.ReportMetric(per, "ns/op")
			if base > 0 {
				b.ReportMetric(per/base, "x-nofilter")
			}
		})
	}
}

func init() {
	childtest.Register("bench-path", func() error {
		path := "/tmp"
		if os.Getenv("BENCH_VARIANT") == "RedirectPath" {
			p := trap.NewPolicy().Trap("faccessat", emulate.RedirectPath("/trapemu-bench", "/tmp"))
			if _, err := trap.Install(p); err != nil {
				return err
			}
			path = "/trapemu-bench"
		}
		return timedLoop(func(n int64) int64 { return CLoopPath(path, n, 0) })
	})
}

// BenchmarkRedirectPath measures faccessat of a path RedirectPath
// rewrites (read from the caller, rewritten, re-issued), against the
// native call on the target path.
func BenchmarkRedirectPath(b *testing.B) {
	for _, v := range []string{"native", "RedirectPath"} {
		b.Run(v, func(b *testing.B) {
			ns, _ := childPerCall(b, "bench-path", v, benchN(b), nil)
			b.ReportMetric(ns, "ns/op")
		})
	}
}
