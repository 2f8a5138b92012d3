package sigsys

import "syscall"

// resultKind mirrors the C core's answer kinds.
type resultKind uint8

const (
	resultValue resultKind = iota
	resultPassthrough
	resultFallback
)

// Result is a Go handler's answer to a trapped call.
type Result struct {
	kind    resultKind
	value   int64
	args    [6]uint64
	newArgs bool
}

// Return makes the call return v. A v in -4095..-1 reads as an error, as
// from the kernel; prefer Fail for errors.
func Return(v int64) Result { return Result{kind: resultValue, value: v} }

// Fail makes the call fail with errno e.
func Fail(e syscall.Errno) Result { return Result{kind: resultValue, value: -int64(e)} }

// Passthrough makes the call for real, on the calling thread, with its own
// arguments, and returns the kernel's answer.
func Passthrough() Result { return Result{kind: resultPassthrough} }

// PassthroughWith makes the call for real on the calling thread with args
// in place of its own. Pointers in args must stay valid until the call is
// made: point into the caller's memory, or into memory that outlives the
// call (the caller makes it after the handler returns).
func PassthroughWith(args [6]uint64) Result {
	return Result{kind: resultPassthrough, args: args, newArgs: true}
}

// Fallback answers the call with the rule's fallback action.
func Fallback() Result { return Result{kind: resultFallback} }

// IsPassthrough reports whether r makes the call for real.
func (r Result) IsPassthrough() bool { return r.kind == resultPassthrough }

// IsFallback reports whether r defers to the rule's fallback.
func (r Result) IsFallback() bool { return r.kind == resultFallback }

// Value is the return value of a Return or Fail result.
func (r Result) Value() int64 { return r.value }
