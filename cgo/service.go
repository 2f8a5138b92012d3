package cgo

/*
#include "trapemu.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SetPathInfo tells the handler which arguments of syscall nr are paths
// (p0, p1, or -1), the dirfd argument each is relative to (or -1), the
// open-flags argument (-1 none, -2 openat2's struct) and which paths the
// call writes (bit 0, bit 1).
func SetPathInfo(nr, p0, d0, p1, d1, flags, writes int) {
	C.te_set_pathinfo(C.int(nr), C.int(p0), C.int(d0), C.int(p1), C.int(d1), C.int(flags), C.int(writes))
}

// SetGoRanges tells the handler where Go code (the Go binary's text) and
// the vDSO are: calls from there never wait for a Go handler.
func SetGoRanges(textLo, textHi, vdsoLo, vdsoHi uintptr) {
	C.te_set_go_ranges(C.uintptr_t(textLo), C.uintptr_t(textHi), C.uintptr_t(vdsoLo), C.uintptr_t(vdsoHi))
}

// ServiceEnter marks the calling OS thread as a service thread (its own
// trapped syscalls are made for real) and counts it as accepting work. The
// caller must hold runtime.LockOSThread for good.
func ServiceEnter() { C.te_service_enter() }

// Request is a call waiting in a slot.
type Request struct {
	Nr   int
	Args [6]uint64
	IP   uint64
	Tag  int
	TID  int
	// Handler is the Go handler's id.
	Handler int
}

// ServiceDoneNext answers slot (if slot >= 0) and waits for the next
// request: one C call per request. It returns the next slot and fills req.
func ServiceDoneNext(slot, kind int, value int64, args *[6]uint64, req *Request) int {
	next := int(C.te_service_done_next(C.int(slot), C.int(kind), C.long(value), (*C.long)(unsafe.Pointer(args))))
	v := C.te_service_slot(C.int(next))
	req.Nr, req.IP, req.Tag, req.TID, req.Handler = int(v.nr), uint64(v.ip), int(v.tag), int(v.tid), int(v.handler)
	for i := range req.Args {
		req.Args[i] = uint64(v.args[i])
	}
	return next
}

// Answer kinds for ServiceDoneNext.
const (
	AnswerValue       = 0
	AnswerPassthrough = 1
	AnswerFallback    = 2
)

// ServiceRunning is the number of service threads accepting work.
func ServiceRunning() int { return int(C.te_service_running()) }

// ServiceState is a snapshot of the hand-off, for diagnostics.
type ServiceState struct {
	Pending, Busy     uint64 // bit masks of slots
	Sleepers, Spinner uint64
	Threads           uint64
}

// ReadServiceState reads the hand-off's state.
func ReadServiceState() ServiceState {
	var out [5]C.uint64_t
	C.te_service_state(&out[0])
	return ServiceState{uint64(out[0]), uint64(out[1]), uint64(out[2]), uint64(out[3]), uint64(out[4])}
}

// StartSpawner starts the spawner process (it must happen before the
// filter is loaded) and prepares the proxy image.
func StartSpawner() error {
	proxyFD := -1
	if img, err := ProxyImage(EscapeIP()); err == nil {
		fd, err := unix.MemfdCreate("trapemu-proxy", unix.MFD_CLOEXEC)
		if err != nil {
			return fmt.Errorf("memfd for the proxy: %w", err)
		}
		if _, err := unix.Write(fd, img); err != nil {
			unix.Close(fd)
			return fmt.Errorf("writing the proxy: %w", err)
		}
		proxyFD = fd
	}
	if r := C.te_spawner_start(C.int(proxyFD)); r != 0 {
		return fmt.Errorf("starting the spawner: %w", unix.Errno(-r))
	}
	return nil
}

// SpawnerRunning reports whether trapped execs go through the spawner.
func SpawnerRunning() bool { return C.te_exec_ready() != 0 }
