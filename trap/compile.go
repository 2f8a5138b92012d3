package trap

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/net/bpf"
)

// Offsets into struct seccomp_data (little-endian hosts: amd64, arm64).
const (
	offNr     = 0
	offArch   = 4
	offIPLo   = 8
	offIPHi   = 12
	offArgs   = 16
	linearMax = 4 // up to this many syscalls, test them one by one
)

func argLo(i int) uint32 { return uint32(offArgs + 8*i) }
func argHi(i int) uint32 { return uint32(offArgs + 8*i + 4) }

// CompileOptions are the runtime facts a filter depends on.
type CompileOptions struct {
	// EscapeIP is the address just after the runtime's own syscall
	// instruction: trapped calls made from there are let through.
	EscapeIP uint64
	// FirstTag is the tag of the policy's first distinct action (1 when
	// no other policy is installed).
	FirstTag int
}

// Program is a compiled policy.
type Program struct {
	// Instructions is the BPF program.
	Instructions []bpf.Instruction
	// Actions[i] is the action of tag FirstTag+i.
	Actions []ActionSpec
	// FirstTag is the tag of Actions[0].
	FirstTag int
	// Counters are the hit counters the handler keeps: one per distinct
	// (tag, syscall) pair, sorted by tag then syscall number.
	Counters []Counter
	// RuleCounter[i] is the index in Counters of rule i's counter, or -1
	// for Deny and Kill rules (the kernel answers those; nothing counts).
	RuleCounter []int
	// EscapeIP is the escape address the program was compiled with.
	EscapeIP uint64
}

// Counter identifies one hit counter.
type Counter struct {
	Tag int
	Nr  int
}

// Raw returns the program in the kernel's format.
func (pr *Program) Raw() ([]bpf.RawInstruction, error) { return bpf.Assemble(pr.Instructions) }

// Compile validates the policy and compiles it to a seccomp BPF program.
func (p *Policy) Compile(opts CompileOptions) (*Program, error) {
	if opts.FirstTag == 0 {
		opts.FirstTag = 1
	}
	rules, err := p.resolve()
	if err != nil {
		return nil, err
	}
	tags, specs := assignTags(rules, opts.FirstTag)
	if opts.FirstTag+len(specs)-1 > maxTag {
		return nil, fmt.Errorf("%w: %d distinct actions from tag %d exceed the %d tags seccomp's RET_DATA can carry", ErrTooManyActions, len(specs), opts.FirstTag, maxTag)
	}
	c := compiler{p: p, rules: rules, tags: tags, opts: opts}
	ins, err := c.program()
	if err != nil {
		return nil, err
	}
	if len(ins) > MaxInstructions {
		return nil, fmt.Errorf("%w: %d instructions, the kernel takes at most %d; use fewer argument conditions", ErrProgramTooLong, len(ins), MaxInstructions)
	}
	prog := &Program{Instructions: ins, Actions: specs, FirstTag: opts.FirstTag, EscapeIP: opts.EscapeIP}
	prog.Counters, prog.RuleCounter = counters(len(p.rules), rules, tags)
	return prog, nil
}

// assignTags gives each distinct trap action a tag, in order of first use.
func assignTags(rules []resolved, first int) (map[int]int, []ActionSpec) {
	byIndex := map[int]int{}
	bySpec := map[ActionSpec]int{}
	var specs []ActionSpec
	for _, r := range rules {
		if r.Kind != RuleTrap || r.chainedTo != 0 {
			continue
		}
		tag, ok := bySpec[r.spec]
		if !ok {
			tag = first + len(specs)
			bySpec[r.spec] = tag
			specs = append(specs, r.spec)
		}
		byIndex[r.index] = tag
	}
	return byIndex, specs
}

func counters(nrules int, rules []resolved, tags map[int]int) ([]Counter, []int) {
	set := map[Counter]bool{}
	for _, r := range rules {
		if r.Kind == RuleTrap && r.chainedTo == 0 {
			set[Counter{tags[r.index], r.nr}] = true
		}
	}
	list := make([]Counter, 0, len(set))
	for c := range set {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Tag != list[j].Tag {
			return list[i].Tag < list[j].Tag
		}
		return list[i].Nr < list[j].Nr
	})
	index := make(map[Counter]int, len(list))
	for i, c := range list {
		index[c] = i
	}
	ruleCounter := make([]int, nrules)
	for i := range ruleCounter {
		ruleCounter[i] = -1
	}
	for _, r := range rules {
		if r.Kind == RuleTrap && r.index >= 1 && r.index <= nrules {
			head := r.index
			if r.chainedTo != 0 {
				head = r.chainedTo
			}
			ruleCounter[r.index-1] = index[Counter{tags[head], r.nr}]
		}
	}
	return list, ruleCounter
}

type compiler struct {
	p     *Policy
	rules []resolved
	tags  map[int]int
	opts  CompileOptions
	asm   assembler
}

// verdict is the seccomp return value of a matched rule.
func (c *compiler) verdict(r resolved) uint32 {
	switch r.Kind {
	case RuleDeny:
		return retErrno | uint32(r.Errno)
	case RuleKill:
		return retKillProcess
	case ruleGuard:
		return retErrno // errno 0: success, nothing done
	}
	return retTrap | uint32(c.tags[r.index])
}

// program lays out: the arch check, the x32 check, a search over syscall
// numbers, and one branch per distinct rule set. Only branches read the
// arguments or the instruction pointer, so the kernel's per-syscall
// constant-action cache still covers every syscall without rules.
func (c *compiler) program() ([]bpf.Instruction, error) {
	a := &c.asm
	bySyscall := map[int][]resolved{}
	for _, r := range c.rules {
		if r.chainedTo == 0 {
			bySyscall[r.nr] = append(bySyscall[r.nr], r)
		}
	}
	nrs := make([]int, 0, len(bySyscall))
	for nr := range bySyscall {
		nrs = append(nrs, nr)
	}
	sort.Ints(nrs)

	// Syscalls whose rule lists compile to the same code share a branch.
	branchOf := map[int]label{}
	branchByKey := map[string]label{}
	var branchOrder []label
	branchRules := map[label][]resolved{}
	for _, nr := range nrs {
		key := c.branchKey(bySyscall[nr])
		l, ok := branchByKey[key]
		if !ok {
			l = a.newLabel()
			branchByKey[key] = l
			branchOrder = append(branchOrder, l)
			branchRules[l] = bySyscall[nr]
		}
		branchOf[nr] = l
	}

	native, foreign, search, allow := a.newLabel(), a.newLabel(), a.newLabel(), a.newLabel()
	a.ld(offArch)
	a.jif(bpf.JumpEqual, c.p.arch.AuditArch, native, foreign)
	a.mark(foreign)
	a.ret(c.p.foreign.ret)
	a.mark(native)
	a.ld(offNr)
	if x32 := c.p.arch.X32Bit; x32 != 0 {
		high, x32calls := a.newLabel(), a.newLabel()
		a.jif(bpf.JumpGreaterOrEqual, x32, high, search)
		a.mark(high)
		// Numbers with the top bit set are no syscall (e.g. -1): the kernel
		// answers ENOSYS. The rest are x32 ABI calls: a foreign ABI.
		a.jif(bpf.JumpGreaterOrEqual, 0x80000000, allow, x32calls)
		a.mark(x32calls)
		a.ret(c.p.foreign.ret)
	}
	a.mark(search)
	c.search(nrs, branchOf, allow)
	a.mark(allow)
	a.ret(retAllow)
	for _, l := range branchOrder {
		a.mark(l)
		c.branch(branchRules[l])
	}
	return a.assemble()
}

// search emits a binary search over nrs (sorted), ending in the branch of
// the matching syscall or at miss.
func (c *compiler) search(nrs []int, branchOf map[int]label, miss label) {
	a := &c.asm
	if len(nrs) <= linearMax {
		for _, nr := range nrs {
			next := a.newLabel()
			a.jif(bpf.JumpEqual, uint32(nr), branchOf[nr], next)
			a.mark(next)
		}
		a.ret(retAllow)
		return
	}
	mid := len(nrs) / 2
	left, right := a.newLabel(), a.newLabel()
	a.jif(bpf.JumpGreaterOrEqual, uint32(nrs[mid]), right, left)
	a.mark(left)
	c.search(nrs[:mid], branchOf, miss)
	a.mark(right)
	c.search(nrs[mid:], branchOf, miss)
}

// branchKey describes the code a syscall's rules compile to.
func (c *compiler) branchKey(rules []resolved) string {
	var b strings.Builder
	for _, r := range c.ordered(rules) {
		fmt.Fprintf(&b, "%d:%x:", r.Kind, c.verdict(r))
		for _, cd := range r.Conds {
			b.WriteString(cd.String())
			b.WriteByte(',')
		}
		b.WriteByte(';')
	}
	return b.String()
}

// ordered returns kernel-decided rules first, then the guard, then trap
// rules, each in policy order.
func (c *compiler) ordered(rules []resolved) []resolved {
	out := make([]resolved, 0, len(rules))
	for _, stage := range []func(RuleKind) bool{
		kernelDecided,
		func(k RuleKind) bool { return k == ruleGuard },
		func(k RuleKind) bool { return k == RuleTrap },
	} {
		for _, r := range rules {
			if stage(r.Kind) {
				out = append(out, r)
			}
		}
	}
	return out
}

// branch emits the rules of one syscall: kernel-decided rules, then the
// escape check, then trap rules; a call no rule matches is allowed.
func (c *compiler) branch(rules []resolved) {
	a := &c.asm
	escaped := false
	for _, r := range c.ordered(rules) {
		if !kernelDecided(r.Kind) && !escaped {
			escaped = true
			notEscape, hiCheck, pass := a.newLabel(), a.newLabel(), a.newLabel()
			a.ld(offIPLo)
			a.jif(bpf.JumpEqual, uint32(c.opts.EscapeIP), hiCheck, notEscape)
			a.mark(hiCheck)
			a.ld(offIPHi)
			a.jif(bpf.JumpEqual, uint32(c.opts.EscapeIP>>32), pass, notEscape)
			a.mark(pass)
			a.ret(retAllow)
			a.mark(notEscape)
		}
		next := a.newLabel()
		for _, cd := range r.Conds {
			c.cond(cd, next)
		}
		a.ret(c.verdict(r))
		a.mark(next)
	}
	a.ret(retAllow)
}

// cond emits one condition: it falls through when it holds and jumps to
// fail when it does not.
func (c *compiler) cond(cd Cond, fail label) {
	a := &c.asm
	ok := a.newLabel()
	vlo, vhi := uint32(cd.Value), uint32(cd.Value>>32)
	lo, hi := argLo(cd.Arg), argHi(cd.Arg)
	// cmp64 compares the argument with v (64-bit unsigned, hi word first):
	// it jumps to gt, eq or lt by the outcome on the high word, and on equal
	// high words compares the low words with test.
	switch cd.Op {
	case OpEq, OpNe:
		match, miss := ok, fail
		if cd.Op == OpNe {
			match, miss = fail, ok
		}
		if !cd.Low32 {
			next := a.newLabel()
			a.ld(hi)
			a.jif(bpf.JumpEqual, vhi, next, miss)
			a.mark(next)
		}
		a.ld(lo)
		a.jif(bpf.JumpEqual, vlo, match, miss)
	case OpMaskedEq:
		mlo, mhi := uint32(cd.Mask), uint32(cd.Mask>>32)
		if !cd.Low32 {
			next := a.newLabel()
			a.ld(hi)
			a.and(mhi)
			a.jif(bpf.JumpEqual, vhi, next, fail)
			a.mark(next)
		}
		a.ld(lo)
		a.and(mlo)
		a.jif(bpf.JumpEqual, vlo, ok, fail)
	case OpGe, OpGt, OpLt, OpLe:
		// Ge/Gt hold when the argument is above; Lt/Le are their negations.
		above, below := ok, fail
		test := bpf.JumpGreaterOrEqual // Ge, and Lt negated
		if cd.Op == OpGt || cd.Op == OpLe {
			test = bpf.JumpGreaterThan
		}
		if cd.Op == OpLt || cd.Op == OpLe {
			above, below = fail, ok
		}
		if !cd.Low32 {
			eqHi, notGtHi := a.newLabel(), a.newLabel()
			a.ld(hi)
			a.jif(bpf.JumpGreaterThan, vhi, above, notGtHi)
			a.mark(notGtHi)
			a.jif(bpf.JumpEqual, vhi, eqHi, below)
			a.mark(eqHi)
		}
		a.ld(lo)
		a.jif(test, vlo, above, below)
	}
	a.mark(ok)
}

// SeccompData is the kernel's struct seccomp_data.
type SeccompData struct {
	Nr   int32
	Arch uint32
	IP   uint64
	Args [6]uint64
}

// Bytes encodes d as the kernel lays it out on a little-endian host.
func (d SeccompData) Bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], uint32(d.Nr))
	binary.LittleEndian.PutUint32(b[4:], d.Arch)
	binary.LittleEndian.PutUint64(b[8:], d.IP)
	for i, v := range d.Args {
		binary.LittleEndian.PutUint64(b[16+8*i:], v)
	}
	return b
}

// Evaluate computes, straight from the rules, the seccomp return value the
// compiled program gives for d. It is the reference the compiler is tested
// against, and a way to ask what a policy does with a call.
func (p *Policy) Evaluate(d SeccompData, opts CompileOptions) (uint32, error) {
	eval, err := p.evaluator(opts)
	if err != nil {
		return 0, err
	}
	return eval(d), nil
}

// evaluator validates the policy once and returns its reference evaluation.
func (p *Policy) evaluator(opts CompileOptions) (func(SeccompData) uint32, error) {
	if opts.FirstTag == 0 {
		opts.FirstTag = 1
	}
	rules, err := p.resolve()
	if err != nil {
		return nil, err
	}
	tags, _ := assignTags(rules, opts.FirstTag)
	c := &compiler{p: p, rules: rules, tags: tags, opts: opts}
	bySyscall := map[uint32][]resolved{}
	for _, r := range rules {
		if r.chainedTo == 0 {
			bySyscall[uint32(r.nr)] = append(bySyscall[uint32(r.nr)], r)
		}
	}
	for nr, rs := range bySyscall {
		bySyscall[nr] = c.ordered(rs)
	}
	return func(d SeccompData) uint32 {
		if d.Arch != p.arch.AuditArch {
			return p.foreign.ret
		}
		nr := uint32(d.Nr)
		if x32 := p.arch.X32Bit; x32 != 0 && nr >= x32 {
			if nr >= 0x80000000 {
				return retAllow
			}
			return p.foreign.ret
		}
		escaped := false
		for _, r := range bySyscall[nr] {
			if !kernelDecided(r.Kind) && !escaped {
				escaped = true
				if d.IP == opts.EscapeIP {
					return retAllow
				}
			}
			all := true
			for _, cd := range r.Conds {
				if !cd.holds(d.Args[cd.Arg]) {
					all = false
					break
				}
			}
			if all {
				return c.verdict(r)
			}
		}
		return retAllow
	}, nil
}
