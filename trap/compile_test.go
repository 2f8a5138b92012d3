package trap

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/trapemu/trapemu/arch"
)

type testAction ActionSpec

func (a testAction) Spec() ActionSpec { return ActionSpec(a) }

func ret(v int64) Action   { return testAction{Kind: KindReturn, Value: v} }
func errno(e int64) Action { return testAction{Kind: KindErrno, Value: e} }
func pass() Action         { return testAction{Kind: KindPassthrough} }

const testEscape = 0x00007f12_3456789a

// vmImage lays seccomp_data out for x/net/bpf's VM, whose 32-bit loads are
// big-endian: each native word is stored big-endian at its offset.
func vmImage(d SeccompData) []byte {
	le := d.Bytes()
	out := make([]byte, len(le))
	for off := 0; off < len(le); off += 4 {
		binary.BigEndian.PutUint32(out[off:], binary.LittleEndian.Uint32(le[off:]))
	}
	return out
}

func runVM(t testing.TB, prog []bpf.Instruction, d SeccompData) uint32 {
	t.Helper()
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	n, err := vm.Run(vmImage(d))
	if err != nil {
		t.Fatalf("vm.Run: %v", err)
	}
	return uint32(n)
}

// interesting returns argument values near a policy's condition constants.
func interesting(p *Policy) []uint64 {
	vals := []uint64{0, 1, 2, 0xffffffff, 0x100000000, ^uint64(0), 1 << 63}
	for _, r := range p.rules {
		for _, c := range r.Conds {
			for _, v := range []uint64{c.Value, c.Mask} {
				vals = append(vals, v, v-1, v+1, v|0xdead00000000, v&0xffffffff, v^0x100000000)
			}
		}
	}
	return vals
}

func randomData(rng *rand.Rand, p *Policy, vals []uint64, nrs []int) SeccompData {
	d := SeccompData{Arch: p.arch.AuditArch, IP: uint64(rng.Int63())}
	switch rng.Intn(20) {
	case 0:
		d.Arch = 0x40000003 // i386
	case 1:
		d.Nr = int32(0x40000000 + rng.Intn(600)) // x32
	case 2:
		d.Nr = -1
	default:
		if rng.Intn(4) == 0 || len(nrs) == 0 {
			d.Nr = int32(rng.Intn(500))
		} else {
			d.Nr = int32(nrs[rng.Intn(len(nrs))])
		}
	}
	if rng.Intn(5) == 0 {
		d.IP = testEscape
	}
	for i := range d.Args {
		if rng.Intn(3) == 0 {
			d.Args[i] = rng.Uint64()
		} else {
			d.Args[i] = vals[rng.Intn(len(vals))]
		}
	}
	return d
}

// checkAgainstReference runs the compiled program and the reference
// evaluation on n random inputs.
func checkAgainstReference(t testing.TB, p *Policy, n int, seed int64) {
	t.Helper()
	opts := CompileOptions{EscapeIP: testEscape}
	prog, err := p.Compile(opts)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if _, err := prog.Raw(); err != nil {
		t.Fatalf("Raw: %v", err)
	}
	var nrs []int
	for _, r := range p.rules {
		if nr, ok := p.arch.SyscallNumber(r.Syscall); ok {
			nrs = append(nrs, nr)
		}
	}
	eval, err := p.evaluator(opts)
	if err != nil {
		t.Fatalf("evaluator: %v", err)
	}
	vm, err := bpf.NewVM(prog.Instructions)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	rng := rand.New(rand.NewSource(seed))
	vals := interesting(p)
	for i := 0; i < n; i++ {
		d := randomData(rng, p, vals, nrs)
		want := eval(d)
		n, err := vm.Run(vmImage(d))
		if err != nil {
			t.Fatalf("vm.Run: %v", err)
		}
		if got := uint32(n); got != want {
			t.Fatalf("input %+v: program says %#x, reference says %#x", d, got, want)
		}
	}
}

func samplePolicy(a *arch.Info) *Policy {
	p := NewPolicyFor(a)
	p.Trap("getppid", ret(4242))
	p.Trap("getpgid", pass())
	p.Trap("chdir", errno(30))
	p.Deny("ptrace", 1)
	p.Kill("kexec_load")
	p.Trap("socket", errno(13), Arg32(0).Eq(2))
	p.Trap("socket", ret(7), Arg32(0).Eq(10), Arg(1).MaskedEq(0xf, 1))
	p.Deny("socket", 97, Arg32(0).Eq(16))
	p.Trap("openat", pass(), Arg(2).MaskedEq(3, 1))
	p.Trap("openat", ret(-2), Arg(3).Between(0x100000000, 0x1ffffffff)...)
	p.Trap("read", ret(0), Arg(0).Gt(1<<40))
	p.Trap("write", ret(1), Arg(2).Lt(5), Arg(0).Ne(1))
	p.Trap("write", ret(2), Arg(2).Le(0x1_0000_0000))
	p.Trap("pread64", ret(3), Arg(3).Ge(0xffff_ffff_0000_0000))
	p.Kill("mount", Arg(4).Eq(0x1234_5678_9abc_def0))
	p.Trap("mount", pass())
	return p
}

func TestCompiledMatchesReference(t *testing.T) {
	for _, a := range []*arch.Info{arch.AMD64, arch.ARM64} {
		t.Run(a.Name, func(t *testing.T) {
			checkAgainstReference(t, samplePolicy(a), 200000, 1)
		})
	}
}

func TestCompiledMatchesReferenceRandomPolicies(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	names := arch.AMD64.Syscalls()
	for i := 0; i < 200; i++ {
		p := randomPolicy(rng, arch.AMD64, names)
		if _, err := p.Compile(CompileOptions{EscapeIP: testEscape}); err != nil {
			continue // random policies may conflict; the fuzz target covers those
		}
		checkAgainstReference(t, p, 3000, int64(i))
	}
}

// randomPolicy builds a policy of random rules over few syscalls, so that
// rules on one syscall meet.
func randomPolicy(rng *rand.Rand, a *arch.Info, names []string) *Policy {
	p := NewPolicyFor(a)
	pool := make([]string, 1+rng.Intn(12))
	for i := range pool {
		pool[i] = names[rng.Intn(len(names))]
	}
	ops := []CondOp{OpEq, OpNe, OpMaskedEq, OpLt, OpLe, OpGt, OpGe}
	for n := rng.Intn(20); n >= 0; n-- {
		name := pool[rng.Intn(len(pool))]
		if _, bad := unsafeSyscalls[name]; bad {
			continue
		}
		var conds []Cond
		for k := rng.Intn(4); k > 0; k-- {
			c := Cond{Arg: rng.Intn(6), Op: ops[rng.Intn(len(ops))], Value: rng.Uint64() >> uint(rng.Intn(64)), Low32: rng.Intn(3) == 0}
			if c.Low32 {
				c.Value &= 0xffffffff
			}
			if c.Op == OpMaskedEq {
				c.Mask = rng.Uint64()
				if c.Low32 {
					c.Mask &= 0xffffffff
				}
				c.Value &= c.Mask
			}
			conds = append(conds, c)
		}
		switch rng.Intn(5) {
		case 0:
			p.Deny(name, 1+rng.Intn(4095), conds...)
		case 1:
			p.Kill(name, conds...)
		default:
			acts := []Action{ret(int64(rng.Intn(5))), errno(int64(1 + rng.Intn(5))), pass()}
			p.Trap(name, acts[rng.Intn(len(acts))], conds...)
		}
	}
	return p
}

// constAction reproduces the kernel's seccomp_cache_prepare emulation: it
// runs the program knowing only nr and arch, and reports the action if the
// program never looks at anything else.
func constAction(prog []bpf.Instruction, nr, audit uint32) (uint32, bool) {
	var acc uint32
	pc := 0
	for steps := 0; steps < len(prog)+1; steps++ {
		switch in := prog[pc].(type) {
		case bpf.LoadAbsolute:
			switch in.Off {
			case offNr:
				acc = nr
			case offArch:
				acc = audit
			default:
				return 0, false
			}
			pc++
		case bpf.JumpIf:
			var ok bool
			switch in.Cond {
			case bpf.JumpEqual:
				ok = acc == in.Val
			case bpf.JumpGreaterThan:
				ok = acc > in.Val
			case bpf.JumpGreaterOrEqual:
				ok = acc >= in.Val
			case bpf.JumpBitsSet:
				ok = acc&in.Val != 0
			default:
				return 0, false
			}
			if ok {
				pc += 1 + int(in.SkipTrue)
			} else {
				pc += 1 + int(in.SkipFalse)
			}
		case bpf.Jump:
			pc += 1 + int(in.Skip)
		case bpf.RetConstant:
			return in.Val, true
		default:
			return 0, false
		}
	}
	return 0, false
}

func TestUntrappedSyscallsStayConstant(t *testing.T) {
	p := samplePolicy(arch.AMD64)
	prog, err := p.Compile(CompileOptions{EscapeIP: testEscape})
	if err != nil {
		t.Fatal(err)
	}
	ruled := map[int]bool{}
	for _, r := range p.rules {
		nr, _ := p.arch.SyscallNumber(r.Syscall)
		ruled[nr] = true
	}
	for _, name := range []string{"rt_sigaction", "rt_sigprocmask", "execve", "execveat"} { // SIGSYS protection, the exec spawner
		nr, _ := p.arch.SyscallNumber(name)
		ruled[nr] = true
	}
	for _, name := range arch.AMD64.Syscalls() {
		nr, _ := arch.AMD64.SyscallNumber(name)
		act, ok := constAction(prog.Instructions, uint32(nr), arch.AMD64.AuditArch)
		switch {
		case ruled[nr] && ok && name != "kexec_load" && name != "ptrace" && name != "getppid" && name != "chdir" && name != "getpgid":
			t.Errorf("%s: has conditional rules but compiled to a constant %#x", name, act)
		case !ruled[nr] && (!ok || act != retAllow):
			t.Errorf("%s: untrapped syscall is not a constant allow (const=%v act=%#x): the kernel's action cache would not cover it", name, ok, act)
		}
	}
	// Deny and Kill rules without conditions stay constant too.
	for name, want := range map[string]uint32{"kexec_load": retKillProcess, "ptrace": retErrno | 1} {
		nr, _ := arch.AMD64.SyscallNumber(name)
		if act, ok := constAction(prog.Instructions, uint32(nr), arch.AMD64.AuditArch); !ok || act != want {
			t.Errorf("%s: want constant %#x, got %v %#x", name, want, ok, act)
		}
	}
}

func TestEverySyscallFitsAndSearchesBinary(t *testing.T) {
	for _, a := range []*arch.Info{arch.AMD64, arch.ARM64} {
		for _, shared := range []bool{true, false} {
			p := NewPolicyFor(a)
			i := 0
			for _, name := range a.Syscalls() {
				if _, bad := unsafeSyscalls[name]; bad {
					p.AllowUnsafe(name)
				}
				act := pass()
				if !shared {
					act = ret(int64(i)) // a distinct action per syscall
				}
				p.Trap(name, act)
				i++
			}
			prog, err := p.Compile(CompileOptions{EscapeIP: testEscape})
			if err != nil {
				t.Fatalf("%s shared=%v: %v", a.Name, shared, err)
			}
			n := len(prog.Instructions)
			t.Logf("%s, %d syscalls, shared action=%v: %d instructions", a.Name, i, shared, n)
			if n > MaxInstructions {
				t.Errorf("%s: %d instructions", a.Name, n)
			}
			// A binary search reaches any syscall in O(log n) comparisons.
			depth := maxDepthToBranch(prog.Instructions)
			if depth > 30 {
				t.Errorf("%s: %d instructions run before a syscall's branch; want a binary search", a.Name, depth)
			}
			checkAgainstReference(t, p, 20000, 3)
		}
	}
}

// maxDepthToBranch is the most instructions executed before the first load
// of the instruction pointer, over every syscall number.
func maxDepthToBranch(prog []bpf.Instruction) int {
	most := 0
	for nr := uint32(0); nr < 500; nr++ {
		pc, n := 0, 0
		var acc uint32
		for ; pc < len(prog); n++ {
			switch in := prog[pc].(type) {
			case bpf.LoadAbsolute:
				if in.Off == offIPLo {
					pc = len(prog)
					continue
				}
				acc = nr
				if in.Off == offArch {
					acc = arch.AMD64.AuditArch
				}
				pc++
			case bpf.JumpIf:
				ok := false
				switch in.Cond {
				case bpf.JumpEqual:
					ok = acc == in.Val || in.Val == arch.ARM64.AuditArch
				case bpf.JumpGreaterOrEqual:
					ok = acc >= in.Val
				}
				if ok {
					pc += 1 + int(in.SkipTrue)
				} else {
					pc += 1 + int(in.SkipFalse)
				}
			case bpf.Jump:
				pc += 1 + int(in.Skip)
			default:
				pc = len(prog)
			}
		}
		if n > most {
			most = n
		}
	}
	return most
}

func TestLongJumpsAreExpanded(t *testing.T) {
	// Many conditions on the first syscalls push later branches beyond a
	// conditional jump's 255-instruction reach.
	p := NewPolicyFor(arch.AMD64)
	for i := 0; i < 40; i++ {
		p.Trap("socket", ret(int64(i)), Arg(0).Eq(uint64(i)), Arg(1).Between(uint64(i), uint64(i)+9)[0], Arg(2).Ne(uint64(i)))
	}
	p.Trap("getppid", ret(1))
	p.Trap("getuid", ret(2))
	checkAgainstReference(t, p, 50000, 5)
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		name  string
		build func(p *Policy)
		want  error
		text  string
	}{
		{"unknown syscall", func(p *Policy) { p.Trap("no_such_call", ret(1)) }, ErrUnknownSyscall, `rule 1 Trap("no_such_call", Return(1)): unknown syscall "no_such_call" on x86_64`},
		{"duplicate", func(p *Policy) { p.Trap("getppid", ret(1)).Trap("getppid", ret(1)) }, ErrDuplicateRule, "rule 2"},
		{"conflict same conds", func(p *Policy) {
			p.Trap("socket", ret(1), Arg(0).Eq(2)).Deny("socket", 1, Arg(0).Eq(2))
		}, ErrConflictingRule, "rule 2"},
		{"shadowed trap", func(p *Policy) { p.Trap("getppid", ret(1)).Trap("getppid", ret(2), Arg(0).Eq(1)) }, ErrConflictingRule, "never reached"},
		{"deny shadows trap", func(p *Policy) { p.Trap("getppid", ret(1), Arg(0).Eq(1)).Deny("getppid", 1) }, ErrConflictingRule, "rule 1"},
		{"errno zero", func(p *Policy) { p.Deny("ptrace", 0) }, ErrBadErrno, "errno 0 is outside 1..4095"},
		{"errno big", func(p *Policy) { p.Trap("getppid", errno(4096)) }, ErrBadErrno, "errno 4096"},
		{"bad arg", func(p *Policy) { p.Trap("getppid", ret(1), Arg(6).Eq(0)) }, ErrBadCondition, "outside 0..5"},
		{"never matches", func(p *Policy) { p.Trap("getppid", ret(1), Arg(0).MaskedEq(1, 2)) }, ErrBadCondition, "can never match"},
		{"unsafe", func(p *Policy) { p.Trap("rt_sigreturn", pass()) }, ErrUnsafeSyscall, "returns through it"},
		{"foreign errno", func(p *Policy) { p.OnForeignArch(FailWith(0)) }, ErrBadErrno, "OnForeignArch"},
		{"no action", func(p *Policy) { p.Trap("getppid", nil) }, ErrBadAction, "no action"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPolicyFor(arch.AMD64)
			tc.build(p)
			_, err := p.Compile(CompileOptions{EscapeIP: testEscape})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("error %q does not say %q", err, tc.text)
			}
		})
	}
}

func TestUnsafeOverride(t *testing.T) {
	p := NewPolicyFor(arch.AMD64).AllowUnsafe("mmap")
	p.Trap("mmap", pass())
	if _, err := p.Compile(CompileOptions{EscapeIP: testEscape}); err != nil {
		t.Fatal(err)
	}
	// Deny and Kill need no override.
	p = NewPolicyFor(arch.AMD64).Deny("mmap", 12).Kill("rt_sigreturn")
	if _, err := p.Compile(CompileOptions{EscapeIP: testEscape}); err != nil {
		t.Fatal(err)
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	p := NewPolicyFor(arch.AMD64).Trap("nope", ret(1)).Deny("ptrace", 0).Trap("rt_sigreturn", pass())
	_, err := p.Compile(CompileOptions{EscapeIP: testEscape})
	for _, want := range []error{ErrUnknownSyscall, ErrBadErrno, ErrUnsafeSyscall} {
		if !errors.Is(err, want) {
			t.Errorf("error %v lacks %v", err, want)
		}
	}
}

func TestTooManyActions(t *testing.T) {
	p := NewPolicyFor(arch.AMD64)
	for i := 0; i < 65536; i++ {
		p.Trap("getppid", ret(int64(i)), Arg(0).Eq(uint64(i)))
	}
	_, err := p.Compile(CompileOptions{EscapeIP: testEscape})
	if !errors.Is(err, ErrTooManyActions) {
		t.Fatalf("got %v", err)
	}
	// Tags are shared with policies installed before.
	p = NewPolicyFor(arch.AMD64).Trap("getppid", ret(1)).Trap("getuid", ret(2))
	if _, err := p.Compile(CompileOptions{EscapeIP: testEscape, FirstTag: 65535}); !errors.Is(err, ErrTooManyActions) {
		t.Fatalf("got %v", err)
	}
}

func TestProgramTooLong(t *testing.T) {
	p := NewPolicyFor(arch.AMD64)
	for i := 0; i < 400; i++ {
		p.Trap("socket", ret(1), Arg(0).Eq(uint64(i)), Arg(1).Ge(uint64(i)), Arg(2).Le(uint64(i)+1))
	}
	_, err := p.Compile(CompileOptions{EscapeIP: testEscape})
	if !errors.Is(err, ErrProgramTooLong) || !strings.Contains(err.Error(), "at most 4096") {
		t.Fatalf("got %v", err)
	}
}

func TestSharedTagsAndCounters(t *testing.T) {
	p := NewPolicyFor(arch.AMD64).ExecDirect().AllowSIGSYSChanges()
	p.Trap("getppid", ret(1)).Trap("getuid", ret(1)).Trap("getgid", ret(2))
	prog, err := p.Compile(CompileOptions{EscapeIP: testEscape, FirstTag: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(prog.Actions) != 2 || prog.Actions[0] != (ActionSpec{Kind: KindReturn, Value: 1}) || prog.Actions[1] != (ActionSpec{Kind: KindReturn, Value: 2}) {
		t.Fatalf("actions %v", prog.Actions)
	}
	if len(prog.Counters) != 3 || prog.Counters[0].Tag != 10 || prog.Counters[2].Tag != 11 {
		t.Fatalf("counters %v", prog.Counters)
	}
	for i, k := range prog.RuleCounter {
		if k < 0 || prog.Counters[k].Nr != mustNr(p.rules[i].Syscall) {
			t.Fatalf("rule %d counter %d", i, k)
		}
	}
}

func mustNr(name string) int {
	nr, _ := arch.AMD64.SyscallNumber(name)
	return nr
}

func TestForeignArch(t *testing.T) {
	p := samplePolicy(arch.AMD64)
	prog, _ := p.Compile(CompileOptions{EscapeIP: testEscape})
	i386 := SeccompData{Nr: 64, Arch: 0x40000003}
	if got := runVM(t, prog.Instructions, i386); got != retKillProcess {
		t.Fatalf("i386 call: %#x, want kill-process", got)
	}
	x32 := SeccompData{Nr: 0x40000000 + 110, Arch: arch.AMD64.AuditArch}
	if got := runVM(t, prog.Instructions, x32); got != retKillProcess {
		t.Fatalf("x32 call: %#x, want kill-process", got)
	}
	p.OnForeignArch(FailWith(38))
	prog, _ = p.Compile(CompileOptions{EscapeIP: testEscape})
	if got := runVM(t, prog.Instructions, i386); got != retErrno|38 {
		t.Fatalf("i386 call: %#x, want errno 38", got)
	}
	neg := SeccompData{Nr: -1, Arch: arch.AMD64.AuditArch}
	if got := runVM(t, prog.Instructions, neg); got != retAllow {
		t.Fatalf("nr -1: %#x, want allow (kernel's ENOSYS)", got)
	}
}

func TestEscapeOnlyInTrapBranches(t *testing.T) {
	p := NewPolicyFor(arch.AMD64).Trap("getppid", ret(4242)).Deny("getppid", 1, Arg(0).Eq(7))
	prog, _ := p.Compile(CompileOptions{EscapeIP: testEscape})
	nr := int32(mustNr("getppid"))
	if got := runVM(t, prog.Instructions, SeccompData{Nr: nr, Arch: arch.AMD64.AuditArch, IP: testEscape}); got != retAllow {
		t.Fatalf("escape: %#x", got)
	}
	if got := runVM(t, prog.Instructions, SeccompData{Nr: nr, Arch: arch.AMD64.AuditArch, IP: testEscape, Args: [6]uint64{7}}); got != retErrno|1 {
		t.Fatalf("deny must hold for the escape address too: %#x", got)
	}
	if got := runVM(t, prog.Instructions, SeccompData{Nr: nr, Arch: arch.AMD64.AuditArch, IP: testEscape + 1<<32}); got != retTrap|1 {
		t.Fatalf("high word of IP must match too: %#x", got)
	}
}

func BenchmarkCompile400Rules(b *testing.B) {
	// 400 rules: 100 syscalls with 4 conditional rules each.
	names := arch.AMD64.Syscalls()
	p := NewPolicyFor(arch.AMD64)
	n := 0
	for i := 0; n < 400; i++ {
		name := names[i%len(names)]
		if _, bad := unsafeSyscalls[name]; bad {
			continue
		}
		for k := 0; k < 4; k++ {
			p.Trap(name, ret(int64(n%7)), Arg32(0).Eq(uint64(k)))
			n++
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Compile(CompileOptions{EscapeIP: testEscape}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSIGSYSGuard(t *testing.T) {
	a := arch.AMD64
	nr, _ := a.SyscallNumber("rt_sigaction")
	eval := func(p *Policy, sig, act, ip uint64) uint32 {
		prog, err := p.Compile(CompileOptions{EscapeIP: testEscape})
		if err != nil {
			t.Fatal(err)
		}
		d := SeccompData{Nr: int32(nr), Arch: a.AuditArch, IP: ip, Args: [6]uint64{sig, act}}
		got := runVM(t, prog.Instructions, d)
		if want, _ := p.Evaluate(d, CompileOptions{EscapeIP: testEscape}); got != want {
			t.Fatalf("program %#x, reference %#x", got, want)
		}
		return got
	}
	p := NewPolicyFor(a).Trap("getppid", ret(1))
	prog, _ := p.Compile(CompileOptions{EscapeIP: testEscape})
	var sigactionTag uint32
	for i, spec := range prog.Actions {
		if spec.Kind == kindSigaction {
			sigactionTag = uint32(prog.FirstTag + i)
		}
	}
	cases := []struct {
		sig, act, ip uint64
		want         uint32
	}{
		{31, 0x1000, 0x401000, retErrno},              // set SIGSYS: succeeds, does nothing
		{31 | 1<<32, 0x1000, 0x401000, retErrno},      // the kernel reads an int
		{31, 0, 0x401000, retTrap | sigactionTag},     // query: passed on by the handler
		{2, 0x1000, 0x401000, retTrap | sigactionTag}, // SIGINT: SIGSYS taken out of its sa_mask
		{31, 0x1000, testEscape, retAllow},            // the runtime's own
	}
	for _, c := range cases {
		if got := eval(p, c.sig, c.act, c.ip); got != c.want {
			t.Errorf("rt_sigaction(%d, %#x) from %#x: %#x, want %#x", c.sig, c.act, c.ip, got, c.want)
		}
	}
	if got := eval(NewPolicyFor(a).AllowSIGSYSChanges().Trap("getppid", ret(1)), 31, 0x1000, 0x401000); got != retAllow {
		t.Errorf("AllowSIGSYSChanges: %#x", got)
	}
	// A user's own rt_sigaction rules come after the guard.
	p = NewPolicyFor(a).AllowUnsafe("rt_sigaction").Trap("rt_sigaction", pass())
	if got := eval(p, 31, 0x1000, 0x401000); got != retErrno {
		t.Errorf("guard must come first: %#x", got)
	}
	if got := eval(p, 2, 0x1000, 0x401000); got != retTrap|1 {
		t.Errorf("user's rule first among trap rules: %#x", got)
	}
}
