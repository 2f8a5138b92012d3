package trace

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Sink receives records. Write is called from one goroutine at a time and
// must not keep r (the tracer reuses it: no allocation per record); Close
// once, after the last record.
type Sink interface {
	Write(r *Record)
	Close() error
}

// Text writes one strace-style line per call:
//
//	[tid 4242] openat(AT_FDCWD, "/etc/hosts", O_RDONLY|O_CLOEXEC) = 3 <0.000011> @ libc.so.6!__open64+0x62
func Text(w io.Writer, sym *Symbolizer) Sink { return &textSink{w: w, sym: sym} }

type textSink struct {
	w   io.Writer
	sym *Symbolizer
}

func (t *textSink) Write(r *Record) {
	var b strings.Builder
	fmt.Fprintf(&b, "[tid %d] %s <%.6f>", r.TID, Call(r), r.Duration.Seconds())
	if t.sym != nil {
		fmt.Fprintf(&b, " @ %s", t.sym.Name(r.CallSite))
		for _, f := range r.Frames {
			fmt.Fprintf(&b, " < %s", t.sym.Name(f))
		}
	}
	b.WriteByte('\n')
	io.WriteString(t.w, b.String())
}

func (t *textSink) Close() error { return nil }

// JSONRecord is the JSON form of a record.
type JSONRecord struct {
	TimeNS     int64    `json:"time_ns"`
	DurationNS int64    `json:"duration_ns"`
	TID        int      `json:"tid"`
	Syscall    string   `json:"syscall"`
	Nr         int      `json:"nr"`
	Args       []string `json:"args"`
	Ret        int64    `json:"ret"`
	Errno      string   `json:"errno,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	CallSite   string   `json:"call_site"`
	Frames     []string `json:"frames,omitempty"`
	Line       string   `json:"line"`
}

// JSON writes one JSON object per call, one per line.
func JSON(w io.Writer, sym *Symbolizer) Sink { return &jsonSink{enc: json.NewEncoder(w), sym: sym} }

type jsonSink struct {
	enc *json.Encoder
	sym *Symbolizer
}

func toJSON(r *Record, sym *Symbolizer) JSONRecord {
	j := JSONRecord{TimeNS: int64(r.Start), DurationNS: int64(r.Duration), TID: r.TID, Syscall: r.Name, Nr: r.Nr,
		Ret: r.Ret, Paths: r.Paths, Line: Call(r), CallSite: fmt.Sprintf("%#x", r.CallSite)}
	for _, a := range r.Args {
		j.Args = append(j.Args, fmt.Sprintf("%#x", a))
	}
	if r.Errno != 0 {
		j.Errno = errnoName(r)
	}
	if sym != nil {
		j.CallSite = sym.Name(r.CallSite)
		for _, f := range r.Frames {
			j.Frames = append(j.Frames, sym.Name(f))
		}
	}
	return j
}

func errnoName(r *Record) string {
	s := Result(r)
	if f := strings.Fields(s); len(f) > 1 {
		return f[1]
	}
	return s
}

func (j *jsonSink) Write(r *Record) { j.enc.Encode(toJSON(r, j.sym)) }
func (j *jsonSink) Close() error    { return nil }

// Logrus logs one entry per call, with fields.
func Logrus(l logrus.FieldLogger, sym *Symbolizer) Sink { return &logrusSink{l: l, sym: sym} }

type logrusSink struct {
	l   logrus.FieldLogger
	sym *Symbolizer
}

func (s *logrusSink) Write(r *Record) {
	j := toJSON(r, s.sym)
	f := logrus.Fields{"syscall": j.Syscall, "tid": j.TID, "ret": j.Ret, "duration": r.Duration, "call_site": j.CallSite}
	if j.Errno != "" {
		f["errno"] = j.Errno
	}
	if len(j.Paths) > 0 {
		f["paths"] = j.Paths
	}
	s.l.WithFields(f).Info(j.Line)
}

func (s *logrusSink) Close() error { return nil }

// SyscallSummary is one line of a summary.
type SyscallSummary struct {
	Name   string
	Calls  int
	Errors int
	Time   time.Duration
}

// Summary counts calls, errors and time per syscall, like strace -c, and
// writes the table at Close. Unobservable lists syscalls the trace could
// not see, with the reason, printed under the table.
type Summary struct {
	w            io.Writer
	mu           sync.Mutex
	by           map[string]*SyscallSummary
	Unobservable map[string]string
	dropped      func() uint64
}

// NewSummary returns a summary sink writing its table to w at Close.
func NewSummary(w io.Writer) *Summary { return &Summary{w: w, by: map[string]*SyscallSummary{}} }

// Write counts r.
func (s *Summary) Write(r *Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.by[r.Name]
	if e == nil {
		e = &SyscallSummary{Name: r.Name}
		s.by[r.Name] = e
	}
	e.Calls++
	if r.Failed() {
		e.Errors++
	}
	e.Time += r.Duration
}

// Lines returns the summary, most time first (then most calls, then name).
func (s *Summary) Lines() []SyscallSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SyscallSummary, 0, len(s.by))
	for _, e := range s.by {
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time != out[j].Time {
			return out[i].Time > out[j].Time
		}
		if out[i].Calls != out[j].Calls {
			return out[i].Calls > out[j].Calls
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Close writes the table.
func (s *Summary) Close() error {
	lines := s.Lines()
	var total SyscallSummary
	for _, l := range lines {
		total.Calls += l.Calls
		total.Errors += l.Errors
		total.Time += l.Time
	}
	fmt.Fprintf(s.w, "%% time     seconds  usecs/call     calls    errors syscall\n")
	sep := "------ ----------- ----------- --------- --------- ----------------\n"
	io.WriteString(s.w, sep)
	for _, l := range lines {
		pct := 0.0
		if total.Time > 0 {
			pct = 100 * float64(l.Time) / float64(total.Time)
		}
		errs := ""
		if l.Errors > 0 {
			errs = fmt.Sprint(l.Errors)
		}
		fmt.Fprintf(s.w, "%6.2f %11.6f %11d %9d %9s %s\n", pct, l.Time.Seconds(), int64(l.Time/time.Microsecond)/int64(l.Calls), l.Calls, errs, l.Name)
	}
	io.WriteString(s.w, sep)
	errs := ""
	if total.Errors > 0 {
		errs = fmt.Sprint(total.Errors)
	}
	fmt.Fprintf(s.w, "%6.2f %11.6f %11s %9d %9s total\n", 100.0, total.Time.Seconds(), "", total.Calls, errs)
	if s.dropped != nil {
		if d := s.dropped(); d > 0 {
			fmt.Fprintf(s.w, "%d records dropped: the ring was full (a bigger ring, or a faster sink)\n", d)
		}
	}
	if len(s.Unobservable) > 0 {
		names := make([]string, 0, len(s.Unobservable))
		for n := range s.Unobservable {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(s.w, "not observable (%d):\n", len(names))
		for _, n := range names {
			fmt.Fprintf(s.w, "  %-16s %s\n", n, s.Unobservable[n])
		}
	}
	return nil
}
