package cgo

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include "trapemu.h"

static int te_dladdr(uintptr_t pc, Dl_info *info) { return dladdr((void *)pc, info); }
*/
import "C"

import (
	"bytes"
	"fmt"
	"unsafe"
)

// TraceFrames is the most return addresses a trace record keeps.
const TraceFrames = C.TE_TRACE_FRAMES

// TraceRecord is one traced call, as the handler wrote it.
type TraceRecord struct {
	Start, End uint64 // CLOCK_MONOTONIC ns around the answer
	Ret        int64
	Args       [6]uint64
	IP         uint64
	Frames     []uint64
	Nr, TID    int
	PID        int
	Tag        int
	// Strings are the path arguments as they were at the call.
	Strings []string
}

var traceRing *C.struct_te_trace_rec

// TraceStart makes the handler record every trapped call into a ring of
// size records (rounded up to a power of two), with up to frames return
// addresses each. The ring is allocated once and kept.
func TraceStart(size int, frames int) error {
	if size < 2 {
		size = 2
	}
	n := 1
	for n < size {
		n <<= 1
	}
	if traceRing != nil {
		return fmt.Errorf("cgo: tracing was started already")
	}
	traceRing = (*C.struct_te_trace_rec)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof(C.struct_te_trace_rec{}))))
	if traceRing == nil {
		return fmt.Errorf("cgo: cannot allocate a trace ring of %d records", n)
	}
	C.te_trace_start(traceRing, C.uint64_t(n), C.int(frames))
	return nil
}

// TraceStop stops recording; records already written can still be drained.
func TraceStop() { C.te_trace_stop() }

// TraceDropped is the number of records dropped because the ring was full.
func TraceDropped() uint64 { return uint64(C.te_trace_dropped()) }

// TraceDrainer copies records out of the ring.
type TraceDrainer struct {
	buf []C.struct_te_trace_rec
}

// NewTraceDrainer returns a drainer that takes up to batch records a call.
func NewTraceDrainer(batch int) *TraceDrainer {
	return &TraceDrainer{buf: make([]C.struct_te_trace_rec, batch)}
}

// Drain calls fn with each record waiting in the ring, oldest first, and
// returns how many there were.
func (d *TraceDrainer) Drain(fn func(*TraceRecord)) int {
	n := int(C.te_trace_drain(&d.buf[0], C.int(len(d.buf))))
	var rec TraceRecord
	for i := 0; i < n; i++ {
		d.convert(&d.buf[i], &rec)
		fn(&rec)
	}
	return n
}

func (d *TraceDrainer) convert(r *C.struct_te_trace_rec, out *TraceRecord) {
	{
		rec := TraceRecord{
			Start: uint64(r.t_start), End: uint64(r.t_end), Ret: int64(r.ret), IP: uint64(r.ip),
			Nr: int(r.nr), TID: int(r.tid), Tag: int(r.tag),
		}
		for k := range rec.Args {
			rec.Args[k] = uint64(r.args[k])
		}
		for k := 0; k < int(r.nframes) && k < TraceFrames; k++ {
			rec.Frames = append(rec.Frames, uint64(r.frames[k]))
		}
		if r.nstr > 0 {
			raw := C.GoBytes(unsafe.Pointer(&r.str[0]), C.TE_TRACE_STR)
			for k := 0; k < int(r.nstr); k++ {
				end := bytes.IndexByte(raw, 0)
				if end < 0 {
					end = len(raw)
				}
				rec.Strings = append(rec.Strings, string(raw[:end]))
				if end == len(raw) {
					break
				}
				raw = raw[end+1:]
			}
		}
		rec.PID = int(r.pid)
		*out = rec
	}
}

// Dladdr names the shared object and symbol that contain pc (from the
// dynamic symbol tables), or "" when unknown.
func Dladdr(pc uint64) (object, symbol string, symAddr uint64) {
	var info C.Dl_info
	if C.te_dladdr(C.uintptr_t(pc), &info) == 0 {
		return "", "", 0
	}
	if info.dli_fname != nil {
		object = C.GoString(info.dli_fname)
	}
	if info.dli_sname != nil {
		symbol = C.GoString(info.dli_sname)
		symAddr = uint64(uintptr(info.dli_saddr))
	}
	return object, symbol, symAddr
}

// TraceSetSink makes records of processes other than owner (forked
// children, whose drainer stayed in the parent) go to fd, one
// SOCK_SEQPACKET message each, in the raw record format.
func TraceSetSink(fd, owner int) { C.te_trace_set_sink(C.int(fd), C.int(owner)) }

// MarkQuiet marks the calling OS thread quiet: its trapped syscalls are
// made for real, neither answered by actions nor traced. The caller must
// keep the goroutine locked to its thread.
func MarkQuiet() { C.te_mark_quiet() }

// TraceRecordSize is the size of a raw record.
const TraceRecordSize = int(unsafe.Sizeof(C.struct_te_trace_rec{}))

// TraceAck tells the handler that n more drained records were handled:
// a thread exiting the process waits for the ring to be acknowledged.
func TraceAck(n int) { C.te_trace_ack(C.uint64_t(n)) }

// DrainRaw calls fn with the raw bytes of each record waiting in the ring.
func (d *TraceDrainer) DrainRaw(fn func([]byte)) int {
	n := int(C.te_trace_drain(&d.buf[0], C.int(len(d.buf))))
	for i := 0; i < n; i++ {
		fn(unsafe.Slice((*byte)(unsafe.Pointer(&d.buf[i])), TraceRecordSize))
	}
	return n
}

// DecodeTraceRecord reads a raw record (from DrainRaw or a sink fd).
func DecodeTraceRecord(b []byte) (TraceRecord, int, error) {
	if len(b) != TraceRecordSize {
		return TraceRecord{}, 0, fmt.Errorf("cgo: trace record of %d bytes, want %d", len(b), TraceRecordSize)
	}
	var raw C.struct_te_trace_rec
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&raw)), TraceRecordSize), b)
	d := &TraceDrainer{buf: []C.struct_te_trace_rec{raw}}
	var out TraceRecord
	d.convert(&d.buf[0], &out)
	return out, int(raw.pid), nil
}

// SetQuietRange makes calls whose call site is in [lo, hi) go to the
// kernel untraced and unanswered by actions: trapemu's own Go code when it
// is a guest in another program.
func SetQuietRange(lo, hi uintptr) { C.te_set_quiet_range(C.uintptr_t(lo), C.uintptr_t(hi)) }
