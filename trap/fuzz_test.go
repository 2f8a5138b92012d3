package trap

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/trapemu/trapemu/arch"
)

// policyFromBytes builds a policy from fuzz input: 10 bytes a rule.
func policyFromBytes(data []byte) *Policy {
	a := arch.AMD64
	names := a.Syscalls()
	p := NewPolicyFor(a)
	if len(data) > 0 && data[0]&1 == 1 {
		p.OnForeignArch(FailWith(int(data[0]) + 1))
	}
	ops := []CondOp{OpEq, OpNe, OpMaskedEq, OpLt, OpLe, OpGt, OpGe}
	for len(data) >= 10 && len(p.rules) < 64 {
		r := data[:10]
		data = data[10:]
		name := names[int(r[0])%24+int(r[1]&3)*40] // few syscalls, so rules meet
		var conds []Cond
		for k := 0; k < int(r[2]&3); k++ {
			v := uint64(binary.LittleEndian.Uint32(r[4:8])) << (8 * (r[3] & 3))
			c := Cond{Arg: int(r[3]>>2) % 7, Op: ops[int(r[8]+byte(k))%len(ops)], Value: v, Low32: r[9]&1 == 1}
			if c.Op == OpMaskedEq {
				c.Mask = v | uint64(r[9])
			}
			conds = append(conds, c)
		}
		switch r[2] >> 5 {
		case 0:
			p.Deny(name, int(r[8])*17, conds...)
		case 1:
			p.Kill(name, conds...)
		default:
			acts := []Action{ret(int64(r[9])), errno(int64(r[8]%140) + 1), pass()}
			p.Trap(name, acts[int(r[2]>>2)%3], conds...)
		}
	}
	return p
}

// FuzzCompile: any policy either is refused with an error or compiles to
// a program that agrees with the reference evaluation.
func FuzzCompile(f *testing.F) {
	f.Add([]byte{0, 5, 0x41, 4, 2, 0, 0, 0, 3, 0, 1, 5, 0x22, 8, 10, 0, 0, 0, 1, 1})
	f.Add([]byte("\x01\x02\x43\x04\xff\xff\xff\xff\x05\x01\x09\x00\x20\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := policyFromBytes(data)
		opts := CompileOptions{EscapeIP: testEscape}
		prog, err := p.Compile(opts)
		if err != nil {
			return // refused whole, with a reason
		}
		eval, err := p.evaluator(opts)
		if err != nil {
			t.Fatalf("compiled but the reference refuses: %v", err)
		}
		vm, err := bpf.NewVM(prog.Instructions)
		if err != nil {
			t.Fatal(err)
		}
		vals := interesting(p)
		var nrs []int
		for _, r := range p.rules {
			nr, _ := p.arch.SyscallNumber(r.Syscall)
			nrs = append(nrs, nr)
		}
		for i := 0; i < 200; i++ {
			d := SeccompData{Arch: p.arch.AuditArch, IP: uint64(i) * 0x1000}
			if i%7 == 0 {
				d.IP = testEscape
			}
			if len(nrs) > 0 {
				d.Nr = int32(nrs[i%len(nrs)])
			}
			for k := range d.Args {
				d.Args[k] = vals[(i*7+k*13)%len(vals)]
			}
			n, err := vm.Run(vmImage(d))
			if err != nil {
				t.Fatal(err)
			}
			if uint32(n) != eval(d) {
				t.Fatalf("input %+v: program %#x, reference %#x", d, uint32(n), eval(d))
			}
		}
	})
}
