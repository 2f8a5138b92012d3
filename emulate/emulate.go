// Package emulate holds the ready-made actions that answer trapped calls.
// Each is answered inside the C SIGSYS handler, so it serves Go code, C code
// reached through cgo and foreign threads alike.
package emulate

import (
	"syscall"

	"github.com/trapemu/trapemu/trap"
)

type spec trap.ActionSpec

func (s spec) Spec() trap.ActionSpec { return trap.ActionSpec(s) }

// Return makes the trapped call return v, without calling the kernel.
func Return(v int64) trap.Action { return spec{Kind: trap.KindReturn, Value: v} }

// Errno makes the trapped call fail with e (1..4095): the caller sees -1
// and errno e (libc), or the error e (Go).
func Errno(e syscall.Errno) trap.Action { return spec{Kind: trap.KindErrno, Value: int64(e)} }

// Passthrough re-issues the trapped call for real, from the runtime's own
// syscall instruction, and returns the kernel's answer.
func Passthrough() trap.Action { return spec{Kind: trap.KindPassthrough} }
