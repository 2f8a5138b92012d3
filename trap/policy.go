// Package trap holds the policy (which system calls to trap and how to
// answer them), its compiler to a seccomp BPF program, the loader and the
// Runtime handle of an installed policy.
package trap

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/sigsys"
)

// RuleKind says who decides a rule's calls.
type RuleKind int

// Rule kinds.
const (
	// RuleTrap rules raise SIGSYS; the handler answers with the rule's Action.
	RuleTrap RuleKind = iota + 1
	// RuleDeny rules are failed by the kernel (SECCOMP_RET_ERRNO).
	RuleDeny
	// RuleKill rules kill the process (SECCOMP_RET_KILL_PROCESS).
	RuleKill
	// ruleGuard is the runtime's own SIGSYS guard (see
	// Policy.AllowSIGSYSChanges): decided after the escape check, first.
	ruleGuard
)

// kernelDecided reports whether rules of kind k come before the escape check.
func kernelDecided(k RuleKind) bool { return k == RuleDeny || k == RuleKill }

// Rule is one line of a policy.
type Rule struct {
	Kind    RuleKind
	Syscall string
	Conds   []Cond
	// Action answers RuleTrap calls.
	Action Action
	// Errno is RuleDeny's errno.
	Errno int
}

// String writes the rule the way it is written in Go.
func (r Rule) String() string {
	var b strings.Builder
	switch r.Kind {
	case RuleTrap:
		fmt.Fprintf(&b, "Trap(%q, %v", r.Syscall, specOf(r.Action))
	case RuleDeny:
		fmt.Fprintf(&b, "Deny(%q, %d", r.Syscall, r.Errno)
	case RuleKill:
		fmt.Fprintf(&b, "Kill(%q", r.Syscall)
	}
	for _, c := range r.Conds {
		fmt.Fprintf(&b, ", %v", c)
	}
	b.WriteString(")")
	return b.String()
}

func specOf(a Action) ActionSpec {
	if a == nil {
		return ActionSpec{}
	}
	return a.Spec()
}

// Policy is an ordered set of rules. Build it with NewPolicy and the Trap,
// Deny and Kill methods; mistakes are reported, all at once, by Compile and
// Install, which refuse the whole policy.
//
// Evaluation of one call: Deny and Kill rules are decided first, in the
// order written (the kernel enforces them, and the runtime's own passthrough
// cannot bypass them); then, if the call comes from the runtime's
// passthrough instruction it is allowed; then Trap rules, in the order
// written, the first whose conditions hold wins; otherwise the call is
// allowed.
type Policy struct {
	execDirect  bool
	sigsysOpen  bool
	service     sigsys.ServiceOptions
	arch        *arch.Info
	rules       []Rule
	foreign     KernelAction
	allowUnsafe map[string]bool
}

// NewPolicy returns an empty policy for the architecture this program runs on.
func NewPolicy() *Policy { return NewPolicyFor(arch.Native()) }

// NewPolicyFor returns an empty policy for architecture a (to compile and
// inspect filters for another architecture).
func NewPolicyFor(a *arch.Info) *Policy {
	return &Policy{arch: a, foreign: KillProcess, allowUnsafe: map[string]bool{}}
}

// Arch returns the policy's architecture.
func (p *Policy) Arch() *arch.Info { return p.arch }

// Rules returns a copy of the rules in the order they were added.
func (p *Policy) Rules() []Rule { return append([]Rule(nil), p.rules...) }

// Trap makes calls to syscall name (those for which every cond holds) raise
// SIGSYS, answered by a.
func (p *Policy) Trap(name string, a Action, conds ...Cond) *Policy {
	p.rules = append(p.rules, Rule{Kind: RuleTrap, Syscall: name, Action: a, Conds: conds})
	return p
}

// Deny makes the kernel fail calls to syscall name with errno (1..4095),
// without a signal.
func (p *Policy) Deny(name string, errno int, conds ...Cond) *Policy {
	p.rules = append(p.rules, Rule{Kind: RuleDeny, Syscall: name, Errno: errno, Conds: conds})
	return p
}

// Kill makes the kernel kill the process when syscall name is called.
func (p *Policy) Kill(name string, conds ...Cond) *Policy {
	p.rules = append(p.rules, Rule{Kind: RuleKill, Syscall: name, Conds: conds})
	return p
}

// NeverTraced lists the syscalls TraceAll leaves alone, with the reason:
// the unsafe ones, and those whose trap would break a program the process
// starts.
func NeverTraced() map[string]string {
	out := UnsafeSyscalls()
	for k, v := range notTraced {
		out[k] = v
	}
	return out
}

var notTraced = map[string]string{}

var execNotTraced = map[string]string{
	"execve":   "ExecDirect: the new program inherits the filter but not the handler; its loader would die at its first trapped call",
	"execveat": "ExecDirect: the new program inherits the filter but not the handler; its loader would die at its first trapped call",
}

// Unobservable lists what a trace of a policy built with TraceAll (and the
// SIGSYS protection, the default) cannot show, with the reason:
// NeverTraced without rt_sigprocmask and rt_sigaction, which the
// protection itself traps (and so they are traced), plus the vDSO calls.
func Unobservable() map[string]string {
	out := NeverTraced()
	delete(out, "rt_sigprocmask")
	delete(out, "rt_sigaction")
	for k, v := range VDSOCalls() {
		out[k] = v
	}
	return out
}

// VDSOCalls lists the calls the vDSO serves in user space: they never
// reach seccomp, so nothing can trap or trace them.
func VDSOCalls() map[string]string {
	const why = "served by the vDSO in user space: never reaches seccomp"
	return map[string]string{"clock_gettime": why, "gettimeofday": why, "time": why, "getcpu": why,
		"clock_getres": why, "getrandom (Go 1.26 and glibc 2.41+ vDSO)": why}
}

// TraceAll traps, with Passthrough, every syscall of the architecture that
// no rule names yet and that can be trapped safely (NeverTraced lists the
// others): with a tracer started (package sigsys/trace), every call the
// process makes is recorded. Calls served by the vDSO never reach seccomp.
func (p *Policy) TraceAll() *Policy {
	named := map[string]bool{}
	for _, r := range p.rules {
		named[r.Syscall] = true
	}
	never := NeverTraced()
	if p.execDirect {
		for k, v := range execNotTraced {
			never[k] = v
		}
	}
	for _, name := range p.arch.Syscalls() {
		if _, skip := never[name]; skip || named[name] {
			continue
		}
		if _, unsafe := unsafeSyscalls[name]; unsafe && !p.allowUnsafe[name] {
			continue
		}
		p.Trap(name, specAction{Kind: KindPassthrough})
	}
	return p
}

// GoHandlers configures the service threads that run Go handlers
// (emulate.Func): how many run at once, the deadline after which a running
// handler is logged with its stack, the logger.
func (p *Policy) GoHandlers(o sigsys.ServiceOptions) *Policy {
	p.service = o
	return p
}

// ExecDirect makes execve and execveat go straight to the kernel: the new
// program inherits the filter, not the handler, and dies at its first
// trapped call (its dynamic loader's calls included). Use it only when the
// programs started make no trapped call, or for Deny/Kill-only policies.
//
// By default, when the policy has Trap rules, Install starts a spawner
// process (before the filter, so it has none); a trapped execve hands path,
// arguments, environment, the fds the program would inherit, the cwd,
// umask, signal mask and ignored signals to it; it starts the program, in
// the caller's process group, outside the policy; the caller then becomes
// a small proxy that waits for the program and exits as it did.
func (p *Policy) ExecDirect() *Policy {
	p.execDirect = true
	return p
}

// AllowSIGSYSChanges lifts the SIGSYS guard. By default the filter makes
// every attempt to change SIGSYS's disposition (rt_sigaction(SIGSYS, act)
// with act set), other than the runtime's own, succeed without doing
// anything: the kernel answers it (RET_ERRNO with errno 0), with no signal,
// so it works even where SIGSYS is blocked. That keeps the handler in
// place where code would otherwise reset it — Go's os/exec child and
// posix_spawn's child reset every handler before execve, and a library may
// install its own — and a trapped call there would kill the process.
// Code that sets a SIGSYS handler sees success; its handler never runs,
// and asking for the disposition shows trapemu's.
func (p *Policy) AllowSIGSYSChanges() *Policy {
	p.sigsysOpen = true
	return p
}

// Apply adds the rules of each set (see package emulate: ReadOnly,
// Identity, Hostname, ...).
func (p *Policy) Apply(sets ...func(*Policy)) *Policy {
	for _, set := range sets {
		set(p)
	}
	return p
}

// OnForeignArch sets what the kernel does with calls made through another
// ABI than the policy's (int 0x80 from an x86_64 process, x32 numbers).
// The default is KillProcess: such calls would otherwise skip every rule.
func (p *Policy) OnForeignArch(k KernelAction) *Policy {
	p.foreign = k
	return p
}

// AllowUnsafe lifts the guard on trapping the named syscalls (see
// UnsafeSyscalls). The caller takes the risk the guard names.
func (p *Policy) AllowUnsafe(names ...string) *Policy {
	for _, n := range names {
		p.allowUnsafe[n] = true
	}
	return p
}

// usesSpawner reports whether Install starts the exec spawner for p.
func (p *Policy) usesSpawner() bool { return !p.execDirect && p.hasTraps() }

// hasTraps reports whether p has Trap rules (and so a SIGSYS handler).
func (p *Policy) hasTraps() bool {
	for _, r := range p.rules {
		if r.Kind == RuleTrap {
			return true
		}
	}
	return false
}

// protectsSIGSYS reports whether Install keeps SIGSYS unblocked.
func (p *Policy) protectsSIGSYS() bool { return !p.sigsysOpen && p.hasTraps() }

// specAction is an Action that is just its spec (the runtime's own rules).
type specAction ActionSpec

func (s specAction) Spec() ActionSpec { return ActionSpec(s) }

// UnsafeSyscalls lists the syscalls that cannot be trapped safely, with
// the reason for each. Deny and Kill rules on them are allowed: the kernel
// answers those without a signal.
func UnsafeSyscalls() map[string]string {
	out := make(map[string]string, len(unsafeSyscalls))
	for k, v := range unsafeSyscalls {
		out[k] = v
	}
	return out
}

const (
	reasonBlocked = "made while SIGSYS is blocked (thread creation in glibc's pthread_create and cgo, new-thread setup); the kernel kills the process for a trap it cannot deliver"
)

var unsafeSyscalls = map[string]string{
	"rt_sigreturn":    "the SIGSYS handler returns through it: a trap there can never be answered",
	"rt_sigprocmask":  reasonBlocked + "; also, a mask changed inside the handler is undone by sigreturn",
	"sigaltstack":     reasonBlocked + "; also, the handler runs on the signal stack it would change",
	"set_robust_list": reasonBlocked,
	"rseq":            reasonBlocked,
	"mprotect":        reasonBlocked + " (stack guard pages)",
	"mmap":            reasonBlocked + " (thread stacks)",
	"munmap":          reasonBlocked + " (thread stacks)",
	"madvise":         reasonBlocked + " (glibc frees an exiting thread's stack)",
	"clone":           reasonBlocked + "; a thread created from inside the handler would start on the handler's frame",
	"clone3":          reasonBlocked + "; a thread created from inside the handler would start on the handler's frame",
	"vfork":           "the child would share and overwrite the parent's signal frame",
	"exit":            reasonBlocked + " (glibc ends threads with every signal blocked)",
	"futex":           "Go's runtime calls it with every signal blocked: in its own signal handler (waking the signal-receiving goroutine) and when a thread exits",
	"rt_sigaction":    "Go's os/exec child and posix_spawn's child reset every signal handler with every signal blocked (changes to SIGSYS itself are answered by the kernel: see AllowSIGSYSChanges)",
}

const reasonRuntimeLibc = "Go's runtime makes it through libc while holding its scheduler slot (cgo's mmap/munmap, sigaction, malloc in thread creation): the call site looks like C code, and waiting for a Go handler there can deadlock the scheduler"

// goHandlerUnsafe lists syscalls a Go handler must never answer, on top of
// unsafeSyscalls.
var goHandlerUnsafe = map[string]string{
	"rt_sigaction": reasonRuntimeLibc,
	"brk":          reasonRuntimeLibc,
	"mremap":       reasonRuntimeLibc,
	"getrandom":    reasonRuntimeLibc,
	"mmap":         reasonRuntimeLibc,
	"munmap":       reasonRuntimeLibc,
	"madvise":      reasonRuntimeLibc,
	"mprotect":     reasonRuntimeLibc,
	"clone":        reasonRuntimeLibc,
	"clone3":       reasonRuntimeLibc,
	"futex":        reasonRuntimeLibc,
}

// GoHandlerUnsafeSyscalls lists the syscalls a Go handler (emulate.Func)
// may not answer, with the reason for each; C-side actions may.
func GoHandlerUnsafeSyscalls() map[string]string {
	out := make(map[string]string, len(goHandlerUnsafe))
	for k, v := range goHandlerUnsafe {
		out[k] = v
	}
	return out
}

// resolved is a validated rule with its syscall number.
type resolved struct {
	Rule
	index int // position in the policy, from 1
	nr    int
	spec  ActionSpec
	// chainedTo is the index of the rule whose action chain this rule's
	// action joined (it has no branch of its own), or 0.
	chainedTo int
}

func (p *Policy) ruleError(i int, err error) error {
	return &RuleError{Rule: i + 1, Desc: p.rules[i].String(), Err: err}
}

// resolve validates every rule; it returns all problems found.
func (p *Policy) resolve() ([]resolved, error) {
	if p.arch == nil {
		return nil, fmt.Errorf("%w: policy has no architecture", ErrUnsupportedArch)
	}
	var errs []error
	if p.foreign.ret == retErrno {
		errs = append(errs, fmt.Errorf("%w: OnForeignArch errno must be in 1..%d", ErrBadErrno, maxErrno))
	}
	out := make([]resolved, 0, len(p.rules))
	for i, r := range p.rules {
		nr, ok := p.arch.SyscallNumber(r.Syscall)
		if !ok {
			errs = append(errs, p.ruleError(i, fmt.Errorf("%w %q on %s", ErrUnknownSyscall, r.Syscall, p.arch.Name)))
			continue
		}
		bad := false
		for _, c := range r.Conds {
			if err := c.validate(); err != nil {
				errs = append(errs, p.ruleError(i, err))
				bad = true
			}
		}
		res := resolved{Rule: r, index: i + 1, nr: nr}
		switch r.Kind {
		case RuleTrap:
			if r.Action == nil {
				errs = append(errs, p.ruleError(i, fmt.Errorf("%w: no action", ErrBadAction)))
				continue
			}
			res.spec = r.Action.Spec()
			if err := res.spec.validate(); err != nil {
				errs = append(errs, p.ruleError(i, err))
				bad = true
			}
			if why, unsafe := unsafeSyscalls[r.Syscall]; unsafe && !p.allowUnsafe[r.Syscall] {
				errs = append(errs, p.ruleError(i, fmt.Errorf("%w: %s (Policy.AllowUnsafe overrides)", ErrUnsafeSyscall, why)))
				bad = true
			} else if why, unsafe := goHandlerUnsafe[r.Syscall]; unsafe && res.spec.Kind == KindGo && !p.allowUnsafe[r.Syscall] {
				errs = append(errs, p.ruleError(i, fmt.Errorf("%w for a Go handler: %s; answer it with an action that runs in C (Policy.AllowUnsafe overrides)", ErrUnsafeSyscall, why)))
				bad = true
			}
		case RuleDeny:
			if r.Errno < 1 || r.Errno > maxErrno {
				errs = append(errs, p.ruleError(i, fmt.Errorf("%w: errno %d is outside 1..%d", ErrBadErrno, r.Errno, maxErrno)))
				bad = true
			}
		case RuleKill:
		default:
			errs = append(errs, p.ruleError(i, fmt.Errorf("%w: unknown rule kind %d", ErrBadAction, r.Kind)))
			bad = true
		}
		if !bad {
			out = append(out, res)
		}
	}
	errs = append(errs, p.checkOverlaps(out)...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	buildChains(out)
	if p.usesSpawner() {
		named := map[string]bool{}
		for _, r := range out {
			named[r.Syscall] = true
		}
		for _, name := range []string{"execve", "execveat"} {
			if nr, ok := p.arch.SyscallNumber(name); ok && !named[name] {
				out = append(out, resolved{Rule: Rule{Kind: RuleTrap, Syscall: name, Action: specAction{Kind: KindPassthrough}},
					nr: nr, spec: ActionSpec{Kind: KindPassthrough}, index: len(p.rules) + 1 + len(out)})
			}
		}
	}
	if !p.sigsysOpen && p.hasTraps() {
		// SIGSYS protection: rt_sigprocmask never blocks SIGSYS, and
		// handlers installed later don't mask it (see AllowSIGSYSChanges).
		for _, g := range []struct {
			name string
			kind ActionKind
		}{{"rt_sigprocmask", kindSigmask}, {"rt_sigaction", kindSigaction}} {
			name, kind := g.name, g.kind
			if nr, ok := p.arch.SyscallNumber(name); ok {
				out = append(out, resolved{Rule: Rule{Kind: RuleTrap, Syscall: name, Action: specAction(ActionSpec{Kind: kind})},
					nr: nr, spec: ActionSpec{Kind: kind}, index: len(p.rules) + 1 + len(out)})
			}
		}
	}
	if !p.sigsysOpen {
		if nr, ok := p.arch.SyscallNumber("rt_sigaction"); ok {
			out = append(out, resolved{Rule: Rule{Kind: ruleGuard, Syscall: "rt_sigaction",
				Conds: []Cond{Arg32(0).Eq(31), Arg(1).Ne(0)}}, nr: nr}) // SIGSYS is 31 on amd64 and arm64
		}
	}
	return out, nil
}

// buildChains appends the actions of rules chained to an earlier rule to
// that rule's action, in policy order.
func buildChains(rules []resolved) {
	pos := map[int]int{}
	for i := range rules {
		pos[rules[i].index] = i
	}
	for i := len(rules) - 1; i >= 0; i-- {
		r := &rules[i]
		if r.chainedTo == 0 {
			continue
		}
		head := &rules[pos[r.chainedTo]]
		// Insert r's spec right after head's own action: walking backwards
		// keeps policy order.
		next := r.spec
		next.Next = head.spec.Next
		head.spec.Next = &next
	}
}

// condKey is a canonical form of a rule's conditions, for finding duplicates.
func condKey(conds []Cond) string {
	keys := make([]string, len(conds))
	for i, c := range conds {
		keys[i] = c.String()
	}
	sort.Strings(keys)
	keys = dedupSorted(keys)
	return strings.Join(keys, "&")
}

func dedupSorted(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// class groups rule kinds by the stage that decides them.
func class(k RuleKind) int {
	if k == RuleTrap {
		return 1
	}
	return 0
}

// checkOverlaps finds rules that repeat or contradict another rule, or can
// never be reached.
func (p *Policy) checkOverlaps(rules []resolved) []error {
	type syscallRules struct {
		byKey         map[string]resolved
		uncond        [2]*resolved // first unconditional rule per class
		firstTrap     *resolved
		chainDeclines bool // the unconditional trap chain may pass calls on
	}
	var errs []error
	bySyscall := map[int]*syscallRules{}
	for i := range rules {
		r := &rules[i]
		s := bySyscall[r.nr]
		if s == nil {
			s = &syscallRules{byKey: map[string]resolved{}}
			bySyscall[r.nr] = s
		}
		key := condKey(r.Conds)
		cl := class(r.Kind)
		if u := s.uncond[1]; s.uncond[0] == nil && cl == 1 && u != nil && s.chainDeclines && key == "" {
			// The unconditional actions so far decline some calls (paths
			// they don't cover): this rule answers those. First match wins.
			r.chainedTo = u.index
			s.chainDeclines = r.spec.mayDecline()
			continue
		}
		if prev, ok := s.byKey[key]; ok && prev.Kind == r.Kind && prev.Errno == r.Errno && prev.spec == r.spec {
			errs = append(errs, p.ruleError(r.index-1, fmt.Errorf("%w: repeats rule %d", ErrDuplicateRule, prev.index)))
			continue
		}
		if u := s.uncond[1]; key == "" && cl == 1 && u != nil && s.uncond[0] == nil {
			errs = append(errs, p.ruleError(r.index-1, fmt.Errorf("%w: never reached, the unconditional %s rules from rule %d %s on answer every call (only RedirectPath, VirtualFile and DenyWrites pass calls on: put them first)", ErrConflictingRule, r.Syscall, u.index, u.Rule)))
			continue
		}
		if prev, ok := s.byKey[key]; ok {
			errs = append(errs, p.ruleError(r.index-1, fmt.Errorf("%w: same syscall and conditions as rule %d %s, with another action", ErrConflictingRule, prev.index, prev.Rule)))
			continue
		}
		s.byKey[key] = *r
		if u := s.uncond[0]; u != nil || (cl == 1 && s.uncond[1] != nil) {
			if u == nil {
				u = s.uncond[1]
			}
			errs = append(errs, p.ruleError(r.index-1, fmt.Errorf("%w: never reached, rule %d %s takes every %s call first", ErrConflictingRule, u.index, u.Rule, r.Syscall)))
			continue
		}
		if key == "" {
			s.uncond[cl] = r
			s.chainDeclines = r.spec.mayDecline()
			if cl == 0 && s.firstTrap != nil {
				t := s.firstTrap
				errs = append(errs, p.ruleError(t.index-1, fmt.Errorf("%w: never reached, rule %d %s (decided by the kernel first) takes every %s call", ErrConflictingRule, r.index, r.Rule, r.Syscall)))
			}
		}
		if cl == 1 && s.firstTrap == nil {
			s.firstTrap = r
		}
	}
	return errs
}
