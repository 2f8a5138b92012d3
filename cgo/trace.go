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
		r := &d.buf[i]
		rec = TraceRecord{
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
		fn(&rec)
	}
	return n
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
