package trap

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/cgo"
	"github.com/trapemu/trapemu/sigsys"
)

// Runtime is an installed policy. Filters cannot be removed: a Runtime
// lives as long as the process.
type Runtime struct {
	policy *Policy
	prog   *Program
	table  *cgo.Table
	rules  []Rule
}

var (
	installMu sync.Mutex
	nextTag   = 1
	installed []*Runtime
)

// Install compiles p and installs it on every thread of the process,
// irreversibly: first the C SIGSYS handler, then no-new-privs and the
// filter (SECCOMP_FILTER_FLAG_TSYNC) from one locked OS thread.
//
// A second Install stacks another filter on top of the first: the kernel
// runs both and the most severe verdict wins (KILL > TRAP > ERRNO > ALLOW);
// for a call both policies trap, the newer policy's action answers. The
// policies share the 65535 tags.
//
// On error nothing is installed and the SIGSYS disposition is unchanged.
func Install(p *Policy) (*Runtime, error) {
	installMu.Lock()
	defer installMu.Unlock()

	if p.arch != arch.Native() {
		return nil, fmt.Errorf("%w: policy is for %s, this process is %s", ErrUnsupportedArch, p.arch.Name, arch.Native().Name)
	}
	prog, err := p.Compile(CompileOptions{EscapeIP: cgo.EscapeIP(), FirstTag: nextTag})
	if err != nil {
		return nil, err
	}
	if err := checkAvailable(); err != nil {
		return nil, err
	}
	raw, err := prog.Raw()
	if err != nil {
		return nil, fmt.Errorf("trap: assembling the filter: %w", err)
	}

	for i := range prog.Actions {
		if prog.Actions[i].hasGo() {
			if err := sigsys.StartService(p.service); err != nil {
				return nil, err
			}
			break
		}
	}

	table := cgo.NewTable(prog.FirstTag, tableEntries(prog))
	table.Publish()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	first := len(installed) == 0
	if err := cgo.InstallHandler(); err != nil {
		table.Withdraw()
		return nil, err
	}
	undo := func() {
		table.Withdraw()
		if first {
			_ = cgo.RestoreHandler()
		}
	}
	cgo.UnmaskSIGSYSInHandlers()
	if p.usesSpawner() && !cgo.SpawnerRunning() {
		if err := cgo.StartSpawner(); err != nil {
			undo()
			return nil, fmt.Errorf("trap: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		undo()
		return nil, fmt.Errorf("%w: prctl(PR_SET_NO_NEW_PRIVS): %v", ErrSeccompUnavailable, err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// go-seccomp-bpf's LoadFilter ignores the syscall's return value; a
	// TSYNC failure is a positive return (the thread that can't sync).
	var r1 uintptr
	var errno unix.Errno
	if p.protectsSIGSYS() {
		var pin runtime.Pinner // fprog points at the filter: C may hold it
		pin.Pin(&filter[0])
		defer pin.Unpin()
		// Every other thread parked while the filter lands: none is in a
		// window with SIGSYS blocked, where its next call (now trapped
		// rt_sigprocmask) would kill the process.
		r, unparked, tid := cgo.QuiesceLoad(unsafe.Pointer(&fprog), unix.SECCOMP_FILTER_FLAG_TSYNC, 200)
		if r < 0 {
			errno = unix.Errno(-r)
		} else {
			r1 = uintptr(r)
		}
		if unparked > 0 && r >= 0 {
			logrus.WithFields(logrus.Fields{"threads": unparked, "tid": tid}).Warn(
				"trapemu: threads that block every signal were not parked while the filter loaded; if they block SIGSYS and make a trapped call, the kernel kills the process")
		}
	} else {
		r1, _, errno = unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
			unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	}
	runtime.KeepAlive(filter)
	switch {
	case errno != 0:
		undo()
		if errno == unix.ENOSYS || errno == unix.EINVAL {
			return nil, fmt.Errorf("%w: seccomp(SET_MODE_FILTER): %v", ErrSeccompUnavailable, errno)
		}
		return nil, fmt.Errorf("trap: seccomp(SET_MODE_FILTER): %w", errno)
	case r1 != 0:
		undo()
		return nil, &ThreadSyncError{TID: int(r1)}
	}
	nextTag += len(prog.Actions)
	rt := &Runtime{policy: p, prog: prog, table: table, rules: p.Rules()}
	installed = append(installed, rt)
	return rt, nil
}

// checkAvailable asks the kernel whether seccomp filters and the actions
// trapemu uses are there.
func checkAvailable() error {
	if _, err := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("%w: prctl(PR_GET_SECCOMP): %v", ErrSeccompUnavailable, err)
	}
	for _, act := range []uint32{retTrap, retErrno, retKillProcess, retAllow} {
		a := act
		_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&a)))
		if errno != 0 {
			return fmt.Errorf("%w: seccomp(GET_ACTION_AVAIL, %#x): %v", ErrSeccompUnavailable, act, errno)
		}
	}
	return nil
}

func tableEntries(prog *Program) []cgo.ActionEntry {
	entries := make([]cgo.ActionEntry, len(prog.Actions))
	for i := range prog.Actions {
		entries[i] = *prog.Actions[i].entry()
	}
	for _, c := range prog.Counters { // sorted by tag, then nr
		e := &entries[c.Tag-prog.FirstTag]
		e.Nrs = append(e.Nrs, c.Nr)
	}
	return entries
}

// RuleStats is one rule's line in Stats.
type RuleStats struct {
	// Rule is the rule's position in the policy, from 1.
	Rule int
	// Desc is the rule as written.
	Desc string
	// Hits is the number of calls the handler answered for the rule. Trap
	// rules on one syscall with the same action share a counter (they share
	// a tag, and the handler does not re-evaluate conditions). Deny and
	// Kill rules are answered by the kernel and are not counted: Hits is 0
	// and Counted false.
	Hits    uint64
	Counted bool
	// GoCalls and Fallbacks split a Func rule's hits: answered by its Go
	// handler, or by its fallback (in C) because the call came from a
	// thread that may hold a Go scheduler slot, or no service thread could
	// take it.
	GoCalls, Fallbacks uint64
}

// Stats are a Runtime's figures.
type Stats struct {
	Rules []RuleStats
	// Handler holds the process-wide counters of the SIGSYS handler.
	Handler cgo.GlobalStats
}

// Stats reads the per-rule hit counters.
func (rt *Runtime) Stats() Stats {
	st := Stats{Handler: cgo.ReadGlobalStats()}
	for i, r := range rt.rules {
		rs := RuleStats{Rule: i + 1, Desc: r.String()}
		if k := rt.prog.RuleCounter[i]; k >= 0 {
			c := rt.prog.Counters[k]
			rs.Hits = rt.table.Hits(c.Tag, c.Nr)
			rs.Counted = true
			if rt.prog.Actions[c.Tag-rt.prog.FirstTag].Kind == KindGo {
				rs.GoCalls, rs.Fallbacks = rt.table.GoCounts(c.Tag)
			}
		}
		st.Rules = append(st.Rules, rs)
	}
	return st
}

// Program returns the compiled filter.
func (rt *Runtime) Program() *Program { return rt.prog }

// Policy returns the installed policy.
func (rt *Runtime) Policy() *Policy { return rt.policy }
