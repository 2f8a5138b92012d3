package trap

import (
	"fmt"
	"sync"

	"github.com/trapemu/trapemu/cgo"
	"github.com/trapemu/trapemu/sigsys"
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
	// KindCopyOut writes Spec.Outs to the caller's buffers (EFAULT if an
	// address is bad, like the kernel) and returns Spec.Value.
	KindCopyOut ActionKind = cgo.KindCopyOut
	// KindGo hands the call to Spec.Go on a service thread where that is
	// safe, and answers it with Spec.Fallback (in C) where it is not.
	KindGo ActionKind = cgo.KindGo
	// KindRedirect rewrites path arguments under prefix Spec.Data to
	// Spec.Data2 and makes the call; it declines other paths.
	KindRedirect ActionKind = cgo.KindRedirect
	// KindVirtualFile answers opens of path Spec.Data with a read-only
	// descriptor of a memfd holding Spec.Data2; it declines other paths.
	KindVirtualFile ActionKind = cgo.KindVirtualFile
	// KindReadOnly fails writes under the NUL-separated prefixes of
	// Spec.Data with EROFS; it declines everything else.
	KindReadOnly ActionKind = cgo.KindReadOnly
	// KindGroups answers getgroups(2) with the gid_t list in Spec.Data.
	KindGroups ActionKind = cgo.KindGroups
	// KindKill makes the process die of SIGSYS, as the kernel's
	// SECCOMP_RET_KILL_PROCESS would (a Func's fallback, a chain's end).
	KindKill ActionKind = cgo.KindKill
	// kindSigmask and kindSigaction are the SIGSYS protection's own.
	kindSigmask   ActionKind = cgo.KindSigmask
	kindSigaction ActionKind = cgo.KindSigaction
)

// maxData bounds the bytes an action carries.
const maxData = 1 << 20

// Out is one buffer a CopyOut action writes: Data goes to the address in
// argument Arg.
type Out struct {
	Arg  int
	Data string
}

// GoHandler is a Go function answering trapped calls (see emulate.Func).
type GoHandler struct {
	Fn func(*sigsys.Call) sigsys.Result
}

// ActionSpec is what the handler is told about an action. Two rules whose
// actions have equal specs share one tag.
type ActionSpec struct {
	Kind  ActionKind
	Value int64
	// Data and Data2 are kind-specific strings.
	Data, Data2 string
	// Outs and NOuts are KindCopyOut's buffers.
	Outs  [cgo.MaxOuts]Out
	NOuts int
	// Go and Fallback are KindGo's handler and the answer, given in C, for
	// calls the handler can't take.
	Go       *GoHandler
	Fallback *ActionSpec
	// Next is tried when this action declines; set by the compiler when
	// several unconditional rules share a syscall.
	Next *ActionSpec
	// Name, when set, is how String shows the action (e.g. `Uname(...)`).
	Name string
	// Problem, when set, says why the action was built wrong; Install
	// refuses the policy with it.
	Problem string
}

// String names the action the way it is written in Go ("Return(4242)").
func (s ActionSpec) String() string {
	out := s.name()
	if s.Next != nil {
		out += " then " + s.Next.String()
	}
	return out
}

func (s ActionSpec) name() string {
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
		return fmt.Sprintf("CopyOut(%d buffers, return %d)", s.NOuts, s.Value)
	case KindGo:
		return fmt.Sprintf("Func(fallback %v)", s.Fallback)
	case KindRedirect:
		return fmt.Sprintf("RedirectPath(%q, %q)", s.Data, s.Data2)
	case KindVirtualFile:
		return fmt.Sprintf("VirtualFile(%q, %d bytes)", s.Data, len(s.Data2))
	case KindReadOnly:
		return fmt.Sprintf("ReadOnly(%q)", s.Data)
	case KindGroups:
		return fmt.Sprintf("Groups(%d)", len(s.Data)/4)
	case KindKill:
		return "Kill()"
	case kindSigmask:
		return "KeepSIGSYSUnblocked()"
	case kindSigaction:
		return "KeepSIGSYSOutOfSaMask()"
	}
	return fmt.Sprintf("Action(kind=%d, value=%d)", s.Kind, s.Value)
}

var (
	goHandlerMu  sync.Mutex
	goHandlerIDs = map[*GoHandler]int{}
)

// goHandlerID numbers Go handlers (from 1) and registers them with the
// service threads.
func goHandlerID(h *GoHandler) int {
	goHandlerMu.Lock()
	defer goHandlerMu.Unlock()
	if id, ok := goHandlerIDs[h]; ok {
		return id
	}
	id := len(goHandlerIDs) + 1
	goHandlerIDs[h] = id
	sigsys.RegisterHandler(id, h.Fn, fmt.Sprintf("Func(%p)", h))
	return id
}

// hasGo reports whether the action, its chain or fallback runs Go code.
func (s *ActionSpec) hasGo() bool {
	return s != nil && (s.Kind == KindGo || s.Next.hasGo())
}

// Action answers a trapped call. Ready-made actions live in package emulate.
type Action interface {
	Spec() ActionSpec
}

// mayDecline reports whether the action can pass a call on to the next.
func (s *ActionSpec) mayDecline() bool {
	switch s.Kind {
	case KindRedirect, KindVirtualFile, KindReadOnly:
		return s.Next == nil || s.Next.mayDecline()
	}
	return false
}

// validate reports why a spec can't be installed, or nil.
func (s ActionSpec) validate() error {
	if s.Problem != "" {
		return fmt.Errorf("%w: %s", ErrBadAction, s.Problem)
	}
	if len(s.Data) > maxData || len(s.Data2) > maxData {
		return fmt.Errorf("%w: %v carries more than %d bytes", ErrBadAction, s.name(), maxData)
	}
	switch s.Kind {
	case KindReturn, KindPassthrough, KindKill, kindSigmask, kindSigaction:
	case KindErrno:
		if s.Value < 1 || s.Value > maxErrno {
			return fmt.Errorf("%w: errno %d is outside 1..%d", ErrBadErrno, s.Value, maxErrno)
		}
	case KindCopyOut:
		if s.NOuts < 1 || s.NOuts > len(s.Outs) {
			return fmt.Errorf("%w: CopyOut of %d buffers (1..%d)", ErrBadAction, s.NOuts, len(s.Outs))
		}
		for _, o := range s.Outs[:s.NOuts] {
			if o.Arg < 0 || o.Arg > 5 || len(o.Data) == 0 || len(o.Data) > maxData {
				return fmt.Errorf("%w: CopyOut to argument %d of %d bytes", ErrBadAction, o.Arg, len(o.Data))
			}
		}
	case KindGo:
		if s.Go == nil || s.Go.Fn == nil {
			return fmt.Errorf("%w: Func without a function", ErrBadAction)
		}
		if s.Fallback == nil {
			return fmt.Errorf("%w: Func needs a fallback answered in C", ErrBadAction)
		}
		if s.Fallback.Kind == KindGo {
			return fmt.Errorf("%w: a Func's fallback must be answered in C, not by another Func", ErrBadAction)
		}
		if err := s.Fallback.validate(); err != nil {
			return err
		}
	case KindRedirect, KindVirtualFile, KindReadOnly:
		if s.Data == "" {
			return fmt.Errorf("%w: %v without a path", ErrBadAction, s.name())
		}
	case KindGroups:
		if len(s.Data)%4 != 0 {
			return fmt.Errorf("%w: group list of %d bytes", ErrBadAction, len(s.Data))
		}
	default:
		return fmt.Errorf("%w: unknown action kind %d", ErrBadAction, s.Kind)
	}
	if s.Next != nil {
		return s.Next.validate()
	}
	return nil
}

// entry converts a spec to the C core's description.
func (s *ActionSpec) entry() *cgo.ActionEntry {
	if s == nil {
		return nil
	}
	e := &cgo.ActionEntry{Kind: uint32(s.Kind), Value: s.Value, Data: s.Data, Data2: s.Data2}
	if s.Kind == KindGo {
		e.Value = int64(goHandlerID(s.Go))
	}
	for _, o := range s.Outs[:s.NOuts] {
		e.Outs = append(e.Outs, cgo.Out{Arg: o.Arg, Data: o.Data})
	}
	e.Next = s.Next.entry()
	e.Fallback = s.Fallback.entry()
	return e
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
