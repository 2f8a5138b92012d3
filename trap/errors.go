package trap

import (
	"errors"
	"fmt"
)

// Sentinel errors; every error Install or Compile returns wraps one of them,
// so callers can test with errors.Is.
var (
	ErrUnknownSyscall     = errors.New("unknown syscall")
	ErrDuplicateRule      = errors.New("duplicate rule")
	ErrConflictingRule    = errors.New("conflicting rule")
	ErrBadErrno           = errors.New("errno out of range")
	ErrBadAction          = errors.New("bad action")
	ErrBadCondition       = errors.New("bad argument condition")
	ErrTooManyActions     = errors.New("too many distinct actions")
	ErrProgramTooLong     = errors.New("filter program too long")
	ErrUnsafeSyscall      = errors.New("syscall cannot be trapped safely")
	ErrSeccompUnavailable = errors.New("seccomp filtering is not available")
	ErrThreadSync         = errors.New("could not synchronize the filter to every thread")
	ErrUnsupportedArch    = errors.New("unsupported architecture")
)

// RuleError says which rule of a policy is wrong and why.
type RuleError struct {
	// Rule is the rule's position in the policy, from 1.
	Rule int
	// Desc is the rule as written, e.g. `Trap("getppid", Return(1))`.
	Desc string
	// Err wraps one of the sentinel errors.
	Err error
}

func (e *RuleError) Error() string { return fmt.Sprintf("rule %d %s: %v", e.Rule, e.Desc, e.Err) }

// Unwrap returns the reason.
func (e *RuleError) Unwrap() error { return e.Err }

// ThreadSyncError is returned when the kernel could not apply the filter to
// every thread of the process (SECCOMP_FILTER_FLAG_TSYNC): thread TID has a
// filter stack that is not an ancestor of the calling thread's.
type ThreadSyncError struct {
	TID int
}

func (e *ThreadSyncError) Error() string {
	return fmt.Sprintf("%v: thread %d has diverging seccomp filters; nothing was installed", ErrThreadSync, e.TID)
}

// Unwrap returns ErrThreadSync.
func (e *ThreadSyncError) Unwrap() error { return ErrThreadSync }
