package sigsys

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/cgo"
)

// Handler answers a trapped call in Go. It runs on a service thread; the
// Call is valid only until it returns.
type Handler func(*Call) Result

// ServiceOptions configure the service threads that run Go handlers.
type ServiceOptions struct {
	// Threads is how many Go handlers can run at once (default 2).
	Threads int
	// Deadline: a handler running longer is logged, with its stack. Its
	// caller keeps waiting for the answer. Default 2s; negative disables.
	Deadline time.Duration
	// Logger receives panics and overdue handlers (default logrus's
	// standard logger).
	Logger logrus.FieldLogger
}

type handlerEntry struct {
	fn   Handler
	desc string
}

var (
	handlers   atomic.Pointer[map[int]handlerEntry]
	handlersMu sync.Mutex

	serviceMu  sync.Mutex
	workers    []*worker
	serviceLog atomic.Pointer[logrus.FieldLogger]
	deadline   atomic.Int64
	watchdog   sync.Once
)

// RegisterHandler makes fn the Go handler with id (the C action's value).
func RegisterHandler(id int, fn Handler, desc string) {
	handlersMu.Lock()
	defer handlersMu.Unlock()
	next := map[int]handlerEntry{}
	if cur := handlers.Load(); cur != nil {
		for k, v := range *cur {
			next[k] = v
		}
	}
	next[id] = handlerEntry{fn, desc}
	handlers.Store(&next)
}

// StartService makes sure at least opts.Threads service threads run, and
// tells the handler where Go code is so that calls from there never wait
// for one.
func StartService(opts ServiceOptions) error {
	serviceMu.Lock()
	defer serviceMu.Unlock()
	if opts.Threads <= 0 {
		opts.Threads = 2
	}
	if opts.Deadline == 0 {
		opts.Deadline = 2 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = logrus.StandardLogger()
	}
	serviceLog.Store(&log)
	deadline.Store(int64(opts.Deadline))
	if len(workers) == 0 {
		text, err := GoText()
		if err != nil {
			return fmt.Errorf("sigsys: finding the Go text: %w", err)
		}
		vdso, err := VDSO()
		if err != nil {
			return fmt.Errorf("sigsys: finding the vDSO: %w", err)
		}
		cgo.SetGoRanges(text.Lo, text.Hi, vdso.Lo, vdso.Hi)
	}
	for len(workers) < opts.Threads {
		w := &worker{id: len(workers)}
		ready := make(chan struct{})
		go w.serve(ready)
		<-ready
		workers = append(workers, w)
	}
	if opts.Deadline > 0 {
		watchdog.Do(func() { go watch() })
	}
	return nil
}

// ServiceThreads returns how many service threads accept work.
func ServiceThreads() int { return cgo.ServiceRunning() }

type worker struct {
	id       int
	goid     atomic.Int64
	started  atomic.Int64 // unix nanos of the running call, 0 when idle
	reported atomic.Int64 // the started value already reported overdue
	mu       sync.Mutex   // guards snap, the running call as the watchdog sees it
	snap     Call
	call     Call
}

func (w *worker) serve(ready chan<- struct{}) {
	runtime.LockOSThread() // never unlocked: the thread is the service's for good
	w.goid.Store(goroutineID())
	cgo.ServiceEnter()
	close(ready)
	a := arch.Native()
	var req cgo.Request
	var args [6]uint64
	slot, kind, value := -1, 0, int64(0)
	for {
		slot = cgo.ServiceDoneNext(slot, kind, value, &args, &req)
		c := &w.call
		*c = Call{Nr: req.Nr, Name: a.SyscallName(req.Nr), Arch: a, Args: req.Args, CallAddr: req.IP, Tag: uint16(req.Tag), TID: req.TID}
		res := w.run(c, req.Handler)
		kind, value, args = cgo.AnswerValue, res.value, req.Args
		switch res.kind {
		case resultPassthrough:
			kind = cgo.AnswerPassthrough
			if res.newArgs {
				args = res.args
			}
		case resultFallback:
			kind = cgo.AnswerFallback
		}
	}
}

func (w *worker) run(c *Call, id int) (res Result) {
	hs := handlers.Load()
	var h handlerEntry
	if hs != nil {
		h = (*hs)[id]
	}
	if h.fn == nil {
		return Fallback()
	}
	w.mu.Lock()
	w.snap = *c
	w.mu.Unlock()
	w.started.Store(time.Now().UnixNano())
	defer func() {
		w.started.Store(0)
		if p := recover(); p != nil {
			logger().WithFields(callFields(c)).WithField("panic", fmt.Sprint(p)).WithField("rule", h.desc).
				Error("trapemu: Go handler panicked; the call gets the rule's fallback")
			res = Fallback()
		}
	}()
	return h.fn(c)
}

func logger() logrus.FieldLogger {
	if l := serviceLog.Load(); l != nil {
		return *l
	}
	return logrus.StandardLogger()
}

func callFields(c *Call) logrus.Fields {
	return logrus.Fields{
		"syscall": c.Name, "nr": c.Nr, "tid": c.TID, "tag": c.Tag,
		"args": fmt.Sprintf("%#x", c.Args), "call_addr": fmt.Sprintf("%#x", c.CallAddr),
	}
}

// watch logs handlers that run past the deadline, once per call.
func watch() {
	for {
		d := time.Duration(deadline.Load())
		if d <= 0 {
			time.Sleep(time.Second)
			continue
		}
		tick := d / 4
		if tick < 10*time.Millisecond {
			tick = 10 * time.Millisecond
		}
		time.Sleep(tick)
		serviceMu.Lock()
		ws := append([]*worker(nil), workers...)
		serviceMu.Unlock()
		now := time.Now().UnixNano()
		for _, w := range ws {
			start := w.started.Load()
			if start == 0 || now-start < int64(d) || w.reported.Load() == start {
				continue
			}
			w.reported.Store(start)
			w.mu.Lock()
			c := w.snap
			w.mu.Unlock()
			fields := logrus.Fields{"running_for": time.Duration(now - start).String(), "stack": goroutineStack(w.goid.Load())}
			for k, v := range callFields(&c) {
				fields[k] = v
			}
			logger().WithFields(fields).Warn("trapemu: Go handler past its deadline; its caller is still waiting")
		}
	}
}

func goroutineID() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	buf = bytes.TrimPrefix(buf, []byte("goroutine "))
	if i := bytes.IndexByte(buf, ' '); i > 0 {
		id, _ := strconv.ParseInt(string(buf[:i]), 10, 64)
		return id
	}
	return 0
}

// goroutineStack returns the stack of goroutine id.
func goroutineStack(id int64) string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	head := []byte("goroutine " + strconv.FormatInt(id, 10) + " [")
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.HasPrefix(g, head) {
			return string(g)
		}
	}
	return "(stack not found)"
}
