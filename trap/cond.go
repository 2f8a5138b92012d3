package trap

import "fmt"

// CondOp is the comparison of an argument condition.
type CondOp int

// Comparison operators. Ranges are unsigned.
const (
	OpEq CondOp = iota + 1
	OpNe
	OpMaskedEq
	OpLt
	OpLe
	OpGt
	OpGe
)

var opNames = map[CondOp]string{OpEq: "Eq", OpNe: "Ne", OpMaskedEq: "MaskedEq", OpLt: "Lt", OpLe: "Le", OpGt: "Gt", OpGe: "Ge"}

// Cond is a condition on one syscall argument. A rule matches when all of
// its conditions hold.
type Cond struct {
	// Arg is the argument index, 0..5.
	Arg int
	// Op is the comparison.
	Op CondOp
	// Value is compared with the argument (after masking, for MaskedEq).
	Value uint64
	// Mask is MaskedEq's mask.
	Mask uint64
	// Low32 compares only the low 32 bits of the argument, as the kernel
	// does for int-typed arguments whose upper register half is undefined.
	Low32 bool
}

// ArgRef names an argument for building conditions.
type ArgRef struct {
	index int
	low32 bool
}

// Arg refers to syscall argument i (0..5) as a full 64-bit value.
func Arg(i int) ArgRef { return ArgRef{index: i} }

// Arg32 refers to the low 32 bits of argument i (0..5): use it for int-typed
// arguments such as socket's domain or an fd.
func Arg32(i int) ArgRef { return ArgRef{index: i, low32: true} }

func (a ArgRef) cond(op CondOp, v, m uint64) Cond {
	return Cond{Arg: a.index, Op: op, Value: v, Mask: m, Low32: a.low32}
}

// Eq matches arg == v.
func (a ArgRef) Eq(v uint64) Cond { return a.cond(OpEq, v, 0) }

// Ne matches arg != v.
func (a ArgRef) Ne(v uint64) Cond { return a.cond(OpNe, v, 0) }

// MaskedEq matches arg & mask == v.
func (a ArgRef) MaskedEq(mask, v uint64) Cond { return a.cond(OpMaskedEq, v, mask) }

// Lt matches arg < v (unsigned).
func (a ArgRef) Lt(v uint64) Cond { return a.cond(OpLt, v, 0) }

// Le matches arg <= v (unsigned).
func (a ArgRef) Le(v uint64) Cond { return a.cond(OpLe, v, 0) }

// Gt matches arg > v (unsigned).
func (a ArgRef) Gt(v uint64) Cond { return a.cond(OpGt, v, 0) }

// Ge matches arg >= v (unsigned).
func (a ArgRef) Ge(v uint64) Cond { return a.cond(OpGe, v, 0) }

// Between matches lo <= arg <= hi (unsigned); it is two conditions.
func (a ArgRef) Between(lo, hi uint64) []Cond { return []Cond{a.Ge(lo), a.Le(hi)} }

func (c Cond) String() string {
	f := "Arg"
	if c.Low32 {
		f = "Arg32"
	}
	if c.Op == OpMaskedEq {
		return fmt.Sprintf("%s(%d).MaskedEq(%#x, %#x)", f, c.Arg, c.Mask, c.Value)
	}
	return fmt.Sprintf("%s(%d).%s(%#x)", f, c.Arg, opNames[c.Op], c.Value)
}

func (c Cond) validate() error {
	if c.Arg < 0 || c.Arg > 5 {
		return fmt.Errorf("%w: argument index %d is outside 0..5", ErrBadCondition, c.Arg)
	}
	if _, ok := opNames[c.Op]; !ok {
		return fmt.Errorf("%w: unknown operator %d", ErrBadCondition, c.Op)
	}
	if c.Low32 && (c.Value>>32 != 0 || c.Mask>>32 != 0) {
		return fmt.Errorf("%w: %v compares 32 bits but its value or mask has upper bits set", ErrBadCondition, c)
	}
	if c.Op == OpMaskedEq && c.Value&^c.Mask != 0 {
		return fmt.Errorf("%w: %v can never match (value has bits outside the mask)", ErrBadCondition, c)
	}
	return nil
}

// holds evaluates the condition on an argument value: the reference the
// compiled program is tested against.
func (c Cond) holds(arg uint64) bool {
	if c.Low32 {
		arg &= 0xffffffff
	}
	switch c.Op {
	case OpEq:
		return arg == c.Value
	case OpNe:
		return arg != c.Value
	case OpMaskedEq:
		return arg&c.Mask == c.Value
	case OpLt:
		return arg < c.Value
	case OpLe:
		return arg <= c.Value
	case OpGt:
		return arg > c.Value
	case OpGe:
		return arg >= c.Value
	}
	return false
}
