package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/sigsys/trace"
	"github.com/trapemu/trapemu/trap"
)

// collect is a sink that keeps records.
type collect struct {
	mu   sync.Mutex
	recs []trace.Record
}

func (c *collect) Write(r *trace.Record) {
	c.mu.Lock()
	c.recs = append(c.recs, *r)
	c.mu.Unlock()
}
func (c *collect) Close() error { return nil }

func init() {
	childtest.Register("trace-in-process", func() error {
		p := trap.NewPolicy().Trap("getppid", emulate.Return(fakePPID)).TraceAll()
		if _, err := install(p); err != nil {
			return err
		}
		var text, js, logged bytes.Buffer
		sum := trace.NewSummary(&bytes.Buffer{})
		col := &collect{}
		sym := trace.NewSymbolizer()
		log := logrus.New()
		log.SetOutput(&logged)
		tr, err := trace.Start(trace.Options{Frames: 4, Sinks: []trace.Sink{trace.Text(&text, sym), trace.JSON(&js, sym), trace.Logrus(log, sym), sum, col}})
		if err != nil {
			return err
		}
		// Known calls, from Go and from C.
		syscall.Getppid()
		CGetppid()
		_, err = os.Open("/nonexistent/trapemu")
		if err == nil {
			return fmt.Errorf("open of a missing file worked")
		}
		path := append([]byte("/etc/hostname"), 0)
		CSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(&path[0])), unix.O_RDONLY|unix.O_CLOEXEC, 0, 0, 0)
		if err := tr.Stop(); err != nil {
			return err
		}
		out := text.String()
		for _, want := range []string{
			"getppid() = 4242",
			`openat(AT_FDCWD, "/nonexistent/trapemu", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)`,
			`openat(AT_FDCWD, "/etc/hostname", O_RDONLY|O_CLOEXEC) = `,
			"@ syscall.rawSyscallNoError (",                          // a Go call site, symbolized
			"< github.com/trapemu/trapemu/internal/childtest.Main (", // and a frame above it
			"libc.so.6!", // a C call site, symbolized
		} {
			if !strings.Contains(out, want) {
				return fmt.Errorf("trace lacks %q:\n%s", want, out)
			}
		}
		// logrus: one entry per call, with fields.
		for _, want := range []string{`msg="getppid() = 4242"`, "syscall=getppid", `errno=ENOENT`, `paths="[/nonexistent/trapemu]"`} {
			if !strings.Contains(logged.String(), want) {
				return fmt.Errorf("logrus output lacks %q:\n%s", want, logged.String())
			}
		}
		// JSON lines parse, and carry the same calls.
		n := 0
		for _, line := range strings.Split(strings.TrimSpace(js.String()), "\n") {
			var j trace.JSONRecord
			if err := json.Unmarshal([]byte(line), &j); err != nil {
				return fmt.Errorf("bad JSON line %q: %v", line, err)
			}
			if j.Syscall == "openat" && j.Errno == "ENOENT" && len(j.Paths) == 1 && j.Paths[0] == "/nonexistent/trapemu" {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%d JSON records of the failed openat, want 1:\n%s", n, js.String())
		}
		// Summary counts agree with the records.
		counts := map[string]int{}
		for _, r := range col.recs {
			counts[r.Name]++
		}
		for _, l := range sum.Lines() {
			if counts[l.Name] != l.Calls {
				return fmt.Errorf("summary says %d %s, records say %d", l.Calls, l.Name, counts[l.Name])
			}
		}
		if counts["getppid"] != 2 {
			return fmt.Errorf("%d getppid records, want 2", counts["getppid"])
		}
		if tr.Dropped() != 0 {
			return fmt.Errorf("%d records dropped", tr.Dropped())
		}
		return nil
	})

	childtest.Register("trace-drops-counted", func() error {
		if _, err := install(trap.NewPolicy().Trap("getppid", emulate.Return(1))); err != nil {
			return err
		}
		col := &collect{}
		tr, err := trace.Start(trace.Options{RingSize: 64, Interval: 1e9, Sinks: []trace.Sink{col}})
		if err != nil {
			return err
		}
		CLoop(unix.SYS_GETPPID, 1000, 1) // far more than the ring holds, before any drain
		tr.Stop()
		got, dropped := uint64(len(col.recs)), tr.Dropped()
		if got+dropped != 1000 || dropped == 0 || got < 64 {
			return fmt.Errorf("%d records + %d dropped, want 1000 with some dropped", got, dropped)
		}
		return nil
	})
}

func TestTraceInProcess(t *testing.T)    { childtest.MustRun(t, "trace-in-process") }
func TestTraceDropsCounted(t *testing.T) { childtest.MustRun(t, "trace-drops-counted") }
