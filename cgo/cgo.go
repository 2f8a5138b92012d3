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
}

// ReadGlobalStats reads the handler's counters.
func ReadGlobalStats() GlobalStats {
	s := &C.te_stats
	return GlobalStats{
		Traps:      uint64(C.te_load(&s.traps)),
		NotTraps:   uint64(C.te_load(&s.not_traps)),
		UnknownTag: uint64(C.te_load(&s.unknown_tag)),
		BadFrame:   uint64(C.te_load(&s.bad_frame)),
	}
}

// ActionEntry describes one tag's action for NewTable.
type ActionEntry struct {
	Kind  uint32
	Value int64
	// Nrs are the syscalls whose hits are counted apart, sorted.
	Nrs []int
	// Data and Arg are KindCopyOut's bytes and the argument that holds
	// the caller's buffer.
	Data string
	Arg  int
}

// Table is the C memory of one policy's actions and counters. It is never
// freed once published: the handler may read it at any time.
type Table struct {
	firstTag int
	actions  []*C.struct_te_action
}

// NewTable allocates (with C.calloc, outside any signal handler) the
// actions of tags firstTag, firstTag+1, ...
func NewTable(firstTag int, entries []ActionEntry) *Table {
	t := &Table{firstTag: firstTag}
	for _, e := range entries {
		a := (*C.struct_te_action)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_te_action{}))))
		a.kind = C.uint32_t(e.Kind)
		a.value = C.int64_t(e.Value)
		a.ncounters = C.uint32_t(len(e.Nrs))
		if len(e.Data) > 0 {
			a.data = (*C.char)(C.CBytes([]byte(e.Data)))
			a.len = C.uint32_t(len(e.Data))
		}
		a.arg = C.uint32_t(e.Arg)
		if len(e.Nrs) > 0 {
			a.counters = (*C.struct_te_counter)(C.calloc(C.size_t(len(e.Nrs)), C.size_t(unsafe.Sizeof(C.struct_te_counter{}))))
			cs := unsafe.Slice(a.counters, len(e.Nrs))
			for i, nr := range e.Nrs {
				cs[i].nr = C.int32_t(nr)
			}
		}
		t.actions = append(t.actions, a)
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
	for i, a := range t.actions {
		C.te_publish(C.uint(t.firstTag+i), nil)
		C.free(unsafe.Pointer(a.counters))
		C.free(unsafe.Pointer(a.data))
		C.free(unsafe.Pointer(a))
	}
	t.actions = nil
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
