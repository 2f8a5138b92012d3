// Package cgo is trapemu's C core seen from Go: the async-signal-safe
// SIGSYS handler, the action table it reads, the passthrough syscall
// instruction and the handler's counters. Nothing reachable from the
// handler allocates, locks or calls stdio.
package cgo

/*
#cgo CFLAGS: -O2 -Wall -fno-omit-frame-pointer
#include <stdlib.h>
#include "trapemu.h"
*/
import "C"

import (
	"fmt"
	"syscall"
	"unsafe"
)

// Action kinds, the values of the C core's TE_KIND_* (checked by a test).
const (
	KindReturn      = 1
	KindErrno       = 2
	KindPassthrough = 3
	KindCopyOut     = 4
	KindGo          = 5
	KindRedirect    = 6
	KindVirtualFile = 7
	KindReadOnly    = 8
	KindGroups      = 9
	KindKill        = 10
	KindExec        = 11
	KindSigmask     = 12
	KindSigaction   = 13
)

// EscapeIP returns the address just after the passthrough syscall
// instruction: the instruction pointer the filter lets through.
func EscapeIP() uint64 { return uint64(C.te_escape_ip()) }

// InstallHandler makes the C handler answer SIGSYS (once per process; later
// calls do nothing) and unblocks SIGSYS on the calling thread.
func InstallHandler() error {
	if r := C.te_install_handler(); r != 0 {
		return fmt.Errorf("sigaction(SIGSYS): %w", syscall.Errno(-r))
	}
	return nil
}

// UnmaskSIGSYSInHandlers removes SIGSYS from the sa_mask of every other
// installed signal handler (Go's runtime installs its own with every
// signal masked), so that a trapped syscall made inside a signal handler
// is answered instead of killing the process. It returns how many
// handlers it changed.
func UnmaskSIGSYSInHandlers() int { return int(C.te_unmask_sigsys_in_handlers()) }

// QuiesceLoad loads a seccomp filter (fprog points to a sock_fprog) with
// every other thread of the process parked in a signal handler: none is
// then inside a window with SIGSYS blocked (thread creation blocks every
// signal for a moment), and none keeps SIGSYS blocked. It returns the
// seccomp call's result (or -errno), and how many threads did not park
// within ms milliseconds (they block every signal), with one's id.
func QuiesceLoad(fprog unsafe.Pointer, flags uintptr, ms int) (r int64, unparked, tid int) {
	var n, t C.int
	r = int64(C.te_quiesce_load(fprog, C.ulong(flags), C.int(ms), &n, &t))
	return r, int(n), int(t)
}

// RestoreHandler puts back the SIGSYS disposition InstallHandler replaced.
func RestoreHandler() error {
	if r := C.te_restore_handler(); r != 0 {
		return fmt.Errorf("sigaction(SIGSYS): %w", syscall.Errno(-r))
	}
	return nil
}

// HandlerActive reports whether SIGSYS is handled by the C handler now.
func HandlerActive() bool { return C.te_handler_active() != 0 }

// Syscall6 issues a syscall through the passthrough instruction.
func Syscall6(nr, a0, a1, a2, a3, a4, a5 uintptr) int64 {
	return int64(C.te_syscall6(C.long(nr), C.long(a0), C.long(a1), C.long(a2), C.long(a3), C.long(a4), C.long(a5)))
}

// GlobalStats are the handler's process-wide counters.
type GlobalStats struct {
	// Traps is the number of seccomp traps answered by an action.
	Traps uint64
	// NotTraps counts SIGSYS signals not raised by seccomp (kill, tgkill):
	// they are ignored.
	NotTraps uint64
	// UnknownTag counts traps whose tag no installed policy owns (another
	// filter's SECCOMP_RET_TRAP): answered with ENOSYS.
	UnknownTag uint64
	// BadFrame counts traps whose siginfo and ucontext disagree: ENOSYS.
	BadFrame uint64
	// ServiceCalls counts trapped calls made by Go service threads (a Go
	// handler's own syscalls), made for real.
	ServiceCalls uint64
}

// ReadGlobalStats reads the handler's counters.
func ReadGlobalStats() GlobalStats {
	s := &C.te_stats
	return GlobalStats{
		Traps:        uint64(C.te_load(&s.traps)),
		NotTraps:     uint64(C.te_load(&s.not_traps)),
		UnknownTag:   uint64(C.te_load(&s.unknown_tag)),
		BadFrame:     uint64(C.te_load(&s.bad_frame)),
		ServiceCalls: uint64(C.te_load(&s.service_calls)),
	}
}

// Out is one buffer a KindCopyOut action writes.
type Out struct {
	Arg  int
	Data string
}

// ActionEntry describes one action for NewTable.
type ActionEntry struct {
	Kind  uint32
	Value int64
	// Nrs are the syscalls whose hits are counted apart, sorted.
	Nrs []int
	// Data and Data2 are kind-specific strings (paths, contents).
	Data, Data2 string
	// Outs are KindCopyOut's buffers.
	Outs []Out
	// Next is tried when this action declines (a path that does not match).
	Next *ActionEntry
	// Fallback answers, in C, KindGo calls a Go handler can't take.
	Fallback *ActionEntry
}

// Table is the C memory of one policy's actions and counters. It is never
// freed once published: the handler may read it at any time.
type Table struct {
	firstTag int
	actions  []*C.struct_te_action
	allocs   []unsafe.Pointer
}

func (t *Table) calloc(n, size uintptr) unsafe.Pointer {
	p := C.calloc(C.size_t(n), C.size_t(size))
	t.allocs = append(t.allocs, p)
	return p
}

func (t *Table) cstring(s string) *C.char {
	p := (*C.char)(t.calloc(uintptr(len(s))+1, 1))
	copy(unsafe.Slice((*byte)(unsafe.Pointer(p)), len(s)), s)
	return p
}

// build allocates one action (and its chain and fallback) in C memory.
func (t *Table) build(e *ActionEntry) *C.struct_te_action {
	if e == nil {
		return nil
	}
	a := (*C.struct_te_action)(t.calloc(1, unsafe.Sizeof(C.struct_te_action{})))
	a.kind = C.uint32_t(e.Kind)
	a.value = C.int64_t(e.Value)
	a.ncounters = C.uint32_t(len(e.Nrs))
	if len(e.Nrs) > 0 {
		a.counters = (*C.struct_te_counter)(t.calloc(uintptr(len(e.Nrs)), unsafe.Sizeof(C.struct_te_counter{})))
		cs := unsafe.Slice(a.counters, len(e.Nrs))
		for i, nr := range e.Nrs {
			cs[i].nr = C.int32_t(nr)
		}
	}
	a.data, a.len = t.cstring(e.Data), C.uint32_t(len(e.Data))
	a.data2, a.len2 = t.cstring(e.Data2), C.uint32_t(len(e.Data2))
	for i, o := range e.Outs {
		if i >= len(a.outs) {
			break
		}
		a.outs[i].arg = C.uint32_t(o.Arg)
		a.outs[i].len = C.uint32_t(len(o.Data))
		a.outs[i].data = t.cstring(o.Data)
		a.nouts = C.uint32_t(i + 1)
	}
	a.next = t.build(e.Next)
	a.fallback = t.build(e.Fallback)
	return a
}

// MaxOuts is how many buffers one CopyOut action can write.
const MaxOuts = C.TE_MAX_OUTS

// NewTable allocates (with C.calloc, outside any signal handler) the
// actions of tags firstTag, firstTag+1, ...
func NewTable(firstTag int, entries []ActionEntry) *Table {
	t := &Table{firstTag: firstTag}
	for i := range entries {
		t.actions = append(t.actions, t.build(&entries[i]))
	}
	return t
}

// Publish makes the handler see the table's actions.
func (t *Table) Publish() {
	for i, a := range t.actions {
		C.te_publish(C.uint(t.firstTag+i), a)
	}
}

// Withdraw hides the table's actions from the handler and frees them. Only
// for a table whose filter was never installed.
func (t *Table) Withdraw() {
	for i := range t.actions {
		C.te_publish(C.uint(t.firstTag+i), nil)
	}
	for _, p := range t.allocs {
		C.free(p)
	}
	t.actions, t.allocs = nil, nil
}

// GoCounts returns, for the KindGo action of tag, the calls its Go handler
// answered and those its fallback answered.
func (t *Table) GoCounts(tag int) (goCalls, fallbacks uint64) {
	i := tag - t.firstTag
	if i < 0 || i >= len(t.actions) {
		return 0, 0
	}
	a := t.actions[i]
	return uint64(C.te_load(&a.go_calls)), uint64(C.te_load(&a.fallbacks))
}

// Hits returns the counter of syscall nr of the action of tag.
func (t *Table) Hits(tag, nr int) uint64 {
	i := tag - t.firstTag
	if i < 0 || i >= len(t.actions) {
		return 0
	}
	a := t.actions[i]
	cs := unsafe.Slice(a.counters, int(a.ncounters))
	for k := range cs {
		if int(cs[k].nr) == nr {
			return uint64(C.te_load(&cs[k].hits))
		}
	}
	return 0
}
