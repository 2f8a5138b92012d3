package trap

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// label names a position in a program under construction.
type label int

// pins is one pseudo-instruction: a real instruction, a label mark, or a
// conditional jump to labels (expanded with unconditional jumps when a
// target is further than a conditional jump's 8-bit offset can reach).
type pins struct {
	mark   label // >0: this entry marks a label, nothing is emitted
	ins    bpf.Instruction
	jcond  bool
	cond   bpf.JumpTest
	val    uint32
	jt, jf label
	ja     label // >0: unconditional jump to this label
	expT   bool  // expansion state of a conditional jump
	expF   bool
}

// assembler builds a BPF program with forward jumps to labels.
type assembler struct {
	ins    []pins
	nlabel label
}

func (a *assembler) newLabel() label {
	a.nlabel++
	return a.nlabel
}

func (a *assembler) mark(l label)           { a.ins = append(a.ins, pins{mark: l}) }
func (a *assembler) emit(i bpf.Instruction) { a.ins = append(a.ins, pins{ins: i}) }
func (a *assembler) ld(off uint32)          { a.emit(bpf.LoadAbsolute{Off: off, Size: 4}) }
func (a *assembler) and(v uint32)           { a.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: v}) }
func (a *assembler) ret(v uint32)           { a.emit(bpf.RetConstant{Val: v}) }
func (a *assembler) jump(l label)           { a.ins = append(a.ins, pins{ja: l}) }
func (a *assembler) jif(c bpf.JumpTest, v uint32, t, f label) {
	a.ins = append(a.ins, pins{jcond: true, cond: c, val: v, jt: t, jf: f})
}

func (p *pins) size() int {
	switch {
	case p.mark > 0:
		return 0
	case p.jcond:
		n := 1
		if p.expT {
			n++
		}
		if p.expF {
			n++
		}
		return n
	}
	return 1
}

// layout assigns addresses to every entry and every label.
func (a *assembler) layout() (addr []int, at map[label]int, total int) {
	addr = make([]int, len(a.ins))
	at = make(map[label]int, a.nlabel)
	pc := 0
	for i := range a.ins {
		addr[i] = pc
		if a.ins[i].mark > 0 {
			at[a.ins[i].mark] = pc
		}
		pc += a.ins[i].size()
	}
	return addr, at, pc
}

// assemble resolves labels. Jumps go forward only.
func (a *assembler) assemble() ([]bpf.Instruction, error) {
	for {
		addr, at, _ := a.layout()
		changed := false
		for i := range a.ins {
			p := &a.ins[i]
			if !p.jcond {
				continue
			}
			if !p.expT && at[p.jt]-addr[i]-1 > 255 {
				p.expT, changed = true, true
			}
			if !p.expF && at[p.jf]-addr[i]-1 > 255 {
				p.expF, changed = true, true
			}
		}
		if !changed {
			break
		}
	}
	addr, at, total := a.layout()
	out := make([]bpf.Instruction, 0, total)
	for i := range a.ins {
		p := &a.ins[i]
		switch {
		case p.mark > 0:
		case p.ja > 0:
			to, ok := at[p.ja]
			if !ok || to <= addr[i] {
				return nil, fmt.Errorf("trap: internal error: bad jump to label %d", p.ja)
			}
			out = append(out, bpf.Jump{Skip: uint32(to - addr[i] - 1)})
		case p.jcond:
			end := addr[i] + p.size()
			t, okT := at[p.jt]
			f, okF := at[p.jf]
			if !okT || !okF || t < end || f < end {
				return nil, fmt.Errorf("trap: internal error: bad conditional jump")
			}
			j := bpf.JumpIf{Cond: p.cond, Val: p.val}
			slot := addr[i] + 1
			var tail []bpf.Instruction
			if p.expT {
				j.SkipTrue = uint8(slot - addr[i] - 1)
				tail = append(tail, bpf.Jump{Skip: uint32(t - slot - 1)})
				slot++
			} else {
				j.SkipTrue = uint8(t - addr[i] - 1)
			}
			if p.expF {
				j.SkipFalse = uint8(slot - addr[i] - 1)
				tail = append(tail, bpf.Jump{Skip: uint32(f - slot - 1)})
			} else {
				j.SkipFalse = uint8(f - addr[i] - 1)
			}
			out = append(out, j)
			out = append(out, tail...)
		default:
			out = append(out, p.ins)
		}
	}
	return out, nil
}
