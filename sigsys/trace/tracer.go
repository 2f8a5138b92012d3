package trace

import (
	"runtime"
	"sync"
	"time"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/cgo"
)

// Options configure a Tracer.
type Options struct {
	// RingSize is the number of records the handler's ring holds (rounded
	// up to a power of two; default 65536).
	RingSize int
	// Frames is how many return addresses above the call site to capture
	// (0..8; default 0). Each costs a read of the caller's stack.
	Frames int
	// Interval is how often the ring is drained (default 10ms).
	Interval time.Duration
	// Sinks receive every record.
	Sinks []Sink
	// Filter, when set, keeps only the records it accepts.
	Filter func(*Record) bool
	// Raw, when set, receives every record in the raw format (see Decode)
	// instead of the sinks.
	Raw func([]byte)
	// Quiet drains on a dedicated OS thread whose own syscalls (the sinks'
	// writes) are neither traced nor answered by actions.
	Quiet bool
}

// Tracer drains the handler's ring into sinks.
type Tracer struct {
	opts    Options
	arch    *arch.Info
	drainer *cgo.TraceDrainer
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	records uint64
	rec     Record // reused: sinks must not keep the pointer they get
}

var started bool

// Start makes the SIGSYS handler record every trapped call and starts
// draining. Only one tracer can run in a process.
func Start(opts Options) (*Tracer, error) {
	if opts.RingSize == 0 {
		opts.RingSize = 1 << 16
	}
	if opts.Interval == 0 {
		opts.Interval = 10 * time.Millisecond
	}
	if err := cgo.TraceStart(opts.RingSize, opts.Frames); err != nil {
		return nil, err
	}
	for _, s := range opts.Sinks {
		if sum, ok := s.(*Summary); ok && sum.dropped == nil {
			sum.dropped = cgo.TraceDropped
		}
	}
	t := &Tracer{opts: opts, arch: arch.Native(), drainer: cgo.NewTraceDrainer(1024), stop: make(chan struct{}), done: make(chan struct{})}
	go t.loop()
	return t, nil
}

func (t *Tracer) loop() {
	defer close(t.done)
	if t.opts.Quiet {
		runtime.LockOSThread() // for good: the thread stays quiet
		cgo.MarkQuiet()
	}
	tick := time.NewTicker(t.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			t.Flush()
			return
		case <-tick.C:
			t.Flush()
		}
	}
}

// Flush drains every record written so far into the sinks.
func (t *Tracer) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.opts.Raw != nil {
		n := t.drainer.DrainRaw(func(b []byte) {
			t.records++
			t.opts.Raw(b)
		})
		cgo.TraceAck(n)
		if n == 0 {
			return
		}
	}
	for {
		n := t.drainer.Drain(func(raw *cgo.TraceRecord) {
			t.rec = fromRaw(t.arch, raw)
			if t.opts.Filter != nil && !t.opts.Filter(&t.rec) {
				return
			}
			t.records++
			for _, s := range t.opts.Sinks {
				s.Write(&t.rec)
			}
		})
		cgo.TraceAck(n)
		if n == 0 {
			return
		}
	}
}

// Dropped is the number of records lost because the ring was full.
func (t *Tracer) Dropped() uint64 { return cgo.TraceDropped() }

// Records is the number of records given to the sinks so far.
func (t *Tracer) Records() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.records
}

// Stop stops recording, drains what is left and closes the sinks.
func (t *Tracer) Stop() error {
	cgo.TraceStop()
	close(t.stop)
	<-t.done
	var first error
	for _, s := range t.opts.Sinks {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
