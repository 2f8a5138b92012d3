package trap

import (
	"fmt"

	"github.com/trapemu/trapemu/cgo"
)

// ActionKind says how the SIGSYS handler answers a trapped call.
type ActionKind uint32

// The kinds of action the handler knows. Their values are the C core's.
const (
	// KindReturn makes the call return Spec.Value.
	KindReturn ActionKind = cgo.KindReturn
	// KindErrno makes the call fail with errno Spec.Value.
	KindErrno ActionKind = cgo.KindErrno
	// KindPassthrough re-issues the call for real and returns its result.
	KindPassthrough ActionKind = cgo.KindPassthrough
	// KindCopyOut writes Spec.Data to the caller's buffer at argument
	// Spec.Arg (EFAULT if that address is bad, like the kernel) and
	// returns Spec.Value.
	KindCopyOut ActionKind = cgo.KindCopyOut
)

// maxCopyOut bounds the data a CopyOut action carries.
const maxCopyOut = 1 << 20

// ActionSpec is what the handler is told about an action. Two rules whose
// actions have equal specs share one tag.
type ActionSpec struct {
	Kind  ActionKind
	Value int64
	// Arg and Data are KindCopyOut's argument index and bytes.
	Arg  int
	Data string
	// Name, when set, is how String shows the action (e.g. `Uname(...)`).
	Name string
	// Problem, when set, says why the action was built wrong; Install
	// refuses the policy with it.
	Problem string
}

// String names the action the way it is written in Go ("Return(4242)").
func (s ActionSpec) String() string {
	if s.Name != "" {
		return s.Name
	}
	switch s.Kind {
	case KindReturn:
		return fmt.Sprintf("Return(%d)", s.Value)
	case KindErrno:
		return fmt.Sprintf("Errno(%d)", s.Value)
	case KindPassthrough:
		return "Passthrough()"
	case KindCopyOut:
		return fmt.Sprintf("CopyOut(arg %d, %d bytes, return %d)", s.Arg, len(s.Data), s.Value)
	}
	return fmt.Sprintf("Action(kind=%d, value=%d)", s.Kind, s.Value)
}

// Action answers a trapped call. Ready-made actions live in package emulate.
type Action interface {
	Spec() ActionSpec
}

// validate reports why a spec can't be installed, or nil.
func (s ActionSpec) validate() error {
	if s.Problem != "" {
		return fmt.Errorf("%w: %s", ErrBadAction, s.Problem)
	}
	switch s.Kind {
	case KindReturn, KindPassthrough:
		return nil
	case KindCopyOut:
		if s.Arg < 0 || s.Arg > 5 {
			return fmt.Errorf("%w: CopyOut argument %d is outside 0..5", ErrBadAction, s.Arg)
		}
		if len(s.Data) == 0 || len(s.Data) > maxCopyOut {
			return fmt.Errorf("%w: CopyOut of %d bytes (1..%d)", ErrBadAction, len(s.Data), maxCopyOut)
		}
		return nil
	case KindErrno:
		if s.Value < 1 || s.Value > maxErrno {
			return fmt.Errorf("%w: errno %d is outside 1..%d", ErrBadErrno, s.Value, maxErrno)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown action kind %d", ErrBadAction, s.Kind)
}

// KernelAction is an answer the kernel gives by itself, without a signal:
// the verdicts available for calls from a foreign architecture.
type KernelAction struct {
	ret uint32
}

// Seccomp return values (linux/seccomp.h).
const (
	retKillProcess uint32 = 0x80000000
	retTrap        uint32 = 0x00030000
	retErrno       uint32 = 0x00050000
	retAllow       uint32 = 0x7fff0000
	retDataMask    uint32 = 0x0000ffff

	maxErrno = 4095
	maxTag   = 65535
	// MaxInstructions is the kernel's limit on a filter's length (BPF_MAXINSNS).
	MaxInstructions = 4096
)

var (
	// AllowCall lets the call through to the kernel.
	AllowCall = KernelAction{retAllow}
	// KillProcess makes the kernel kill the whole process (SIGSYS, core).
	KillProcess = KernelAction{retKillProcess}
)

// FailWith makes the kernel fail the call with errno e, in 1..4095.
func FailWith(e int) KernelAction {
	if e < 1 || e > maxErrno {
		return KernelAction{ret: retErrno} // refused at Compile: errno 0
	}
	return KernelAction{retErrno | uint32(e)}
}

func (k KernelAction) String() string {
	switch {
	case k.ret == retAllow:
		return "allow"
	case k.ret == retKillProcess:
		return "kill-process"
	case k.ret&^retDataMask == retErrno:
		return fmt.Sprintf("errno(%d)", k.ret&retDataMask)
	}
	return fmt.Sprintf("seccomp-ret(%#x)", k.ret)
}
