// Package sigsys is the Go view of one trapped system call: Call, decoded
// from copies of the siginfo and ucontext the kernel gave the SIGSYS
// handler.
package sigsys

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/trapemu/trapemu/arch"
)

// Offsets in a 64-bit siginfo_t of a SIGSYS.
const (
	siSigno    = 0
	siErrno    = 4 // seccomp's RET_DATA: the rule's tag
	siCode     = 8
	siCallAddr = 16
	siSyscall  = 24
	siArch     = 28
	// SiginfoSize is the size of siginfo_t.
	SiginfoSize = 128

	sigSYS     = 31
	sysSeccomp = 1
)

// Call is one trapped system call.
type Call struct {
	// Nr is the syscall number and Name its name.
	Nr   int
	Name string
	// Arch is the architecture of the call.
	Arch *arch.Info
	// Args are the six arguments as the caller's registers held them.
	Args [6]uint64
	// CallAddr is the address just after the caller's syscall instruction.
	CallAddr uint64
	// Tag is the tag of the rule that trapped the call.
	Tag uint16
	// TID is the thread that made the call (0 when unknown).
	TID int
}

// Summary describes the call in one line.
func (c *Call) Summary() string {
	return fmt.Sprintf("%s(%#x, %#x, %#x, %#x, %#x, %#x) tag=%d tid=%d at %#x",
		c.Name, c.Args[0], c.Args[1], c.Args[2], c.Args[3], c.Args[4], c.Args[5], c.Tag, c.TID, c.CallAddr)
}

// Errors of Decode.
var (
	ErrNotSIGSYS     = errors.New("sigsys: signal is not SIGSYS")
	ErrNotSeccomp    = errors.New("sigsys: SIGSYS was not raised by seccomp (si_code != SYS_SECCOMP)")
	ErrForeignArch   = errors.New("sigsys: call from an architecture trapemu does not decode")
	ErrFrameMismatch = errors.New("sigsys: siginfo and ucontext disagree")
	ErrShortFrame    = errors.New("sigsys: frame copy too short")
)

// Decode reads a trapped call from copies of the handler's siginfo and
// ucontext. It checks, like the C handler, that the signal is a seccomp
// trap and that si_syscall, si_call_addr and si_arch agree with the
// registers.
func Decode(siginfo, uctx []byte, tid int) (Call, error) {
	if len(siginfo) < siArch+4 {
		return Call{}, ErrShortFrame
	}
	le := binary.LittleEndian
	if le.Uint32(siginfo[siSigno:]) != sigSYS {
		return Call{}, ErrNotSIGSYS
	}
	if int32(le.Uint32(siginfo[siCode:])) != sysSeccomp {
		return Call{}, ErrNotSeccomp
	}
	audit := le.Uint32(siginfo[siArch:])
	a, ok := arch.ByAuditArch(audit)
	if !ok {
		return Call{}, fmt.Errorf("%w: %s", ErrForeignArch, arch.AuditArchName(audit))
	}
	ctx := a.Context
	if len(uctx) < ctx.Size {
		return Call{}, ErrShortFrame
	}
	c := Call{
		Nr:       int(int32(le.Uint32(siginfo[siSyscall:]))),
		Arch:     a,
		CallAddr: le.Uint64(siginfo[siCallAddr:]),
		Tag:      uint16(le.Uint32(siginfo[siErrno:])),
		TID:      tid,
	}
	c.Name = a.SyscallName(c.Nr)
	for i, off := range ctx.Args {
		c.Args[i] = le.Uint64(uctx[off:])
	}
	if ip := le.Uint64(uctx[ctx.IP:]); ip != c.CallAddr {
		return Call{}, fmt.Errorf("%w: si_call_addr %#x, instruction pointer %#x", ErrFrameMismatch, c.CallAddr, ip)
	}
	if nr := le.Uint64(uctx[ctx.Nr:]); nr != uint64(c.Nr) {
		return Call{}, fmt.Errorf("%w: si_syscall %d, number register %d", ErrFrameMismatch, c.Nr, nr)
	}
	return c, nil
}
