// Package emulate holds the ready-made actions that answer trapped calls,
// and sets of rules that emulate one thing across several syscalls.
//
// Every action here except Func is answered inside the C SIGSYS handler,
// so it serves Go code, C code reached through cgo and foreign threads
// alike. Func runs Go code on a service thread where that is safe and
// answers with its fallback (in C) where it is not.
//
// Composition: when several unconditional Trap rules name one syscall and
// the earlier ones can decline a call (RedirectPath, VirtualFile and
// DenyWrites decline paths they don't cover), the first that does not
// decline answers; if all decline, the call is made for real.
package emulate

import (
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/sigsys"
	"github.com/trapemu/trapemu/trap"
)

type spec trap.ActionSpec

func (s spec) Spec() trap.ActionSpec { return trap.ActionSpec(s) }

// Return makes the trapped call return v, without calling the kernel.
func Return(v int64) trap.Action { return spec{Kind: trap.KindReturn, Value: v} }

// Errno makes the trapped call fail with e (1..4095): the caller sees -1
// and errno e (libc), or the error e (Go).
func Errno(e syscall.Errno) trap.Action { return spec{Kind: trap.KindErrno, Value: int64(e)} }

// Passthrough re-issues the trapped call for real, from the runtime's own
// syscall instruction, and returns the kernel's answer.
func Passthrough() trap.Action { return spec{Kind: trap.KindPassthrough} }

// Kill makes the process die of SIGSYS, as the kernel's kill-process
// verdict would. Prefer Policy.Kill, decided by the kernel itself; Kill is
// for where an action is needed: a Func's fallback, the end of a chain.
func Kill() trap.Action { return spec{Kind: trap.KindKill} }

// Buffer is one write of CopyOut: Data goes to the address in argument Arg.
type Buffer struct {
	Arg  int
	Data []byte
}

// CopyOut writes each buffer to the caller's memory (up to three) and makes
// the call return ret. A bad address makes the call fail with EFAULT, as
// the kernel's own copy would.
func CopyOut(ret int64, bufs ...Buffer) trap.Action {
	s := spec{Kind: trap.KindCopyOut, Value: ret, NOuts: len(bufs)}
	if len(bufs) > len(s.Outs) {
		s.Problem = fmt.Sprintf("CopyOut of %d buffers, at most %d", len(bufs), len(s.Outs))
		return s
	}
	for i, b := range bufs {
		s.Outs[i] = trap.Out{Arg: b.Arg, Data: string(b.Data)}
	}
	return s
}

// Func answers calls with fn, a Go function run on a service thread, where
// that is safe: when the calling thread holds no Go scheduler slot (its
// call site is outside the Go binary's text and outside the vDSO: C code
// reached through cgo, foreign threads). Every other call, and calls when
// no service thread can take them (a forked child), are answered by
// fallback, which runs in C. fallback must not be another Func.
func Func(fn func(*sigsys.Call) sigsys.Result, fallback trap.Action) trap.Action {
	s := spec{Kind: trap.KindGo, Go: &trap.GoHandler{Fn: fn}}
	if fallback == nil {
		s.Problem = "Func needs a fallback"
		return s
	}
	fb := fallback.Spec()
	s.Fallback = &fb
	return s
}

// UTS is a system identity as uname(2) reports it. Empty fields keep the
// real system's values (read when Uname is called).
type UTS struct {
	Sysname, Nodename, Release, Version, Machine, Domainname string
}

// utsFieldLen is the size of each struct utsname field, with its NUL.
const utsFieldLen = 65

// Uname answers uname(2) with u, for Go code (syscall.Uname) and C code
// (uname(3), and glibc's gethostname(3)) alike.
func Uname(u UTS) trap.Action {
	var real unix.Utsname
	if err := unix.Uname(&real); err != nil {
		return spec{Kind: trap.KindCopyOut, Problem: "Uname: reading the real uname: " + err.Error()}
	}
	fields := []struct {
		want string
		real []byte
		name string
	}{
		{u.Sysname, real.Sysname[:], "Sysname"},
		{u.Nodename, real.Nodename[:], "Nodename"},
		{u.Release, real.Release[:], "Release"},
		{u.Version, real.Version[:], "Version"},
		{u.Machine, real.Machine[:], "Machine"},
		{u.Domainname, real.Domainname[:], "Domainname"},
	}
	buf := make([]byte, 0, len(fields)*utsFieldLen)
	for _, f := range fields {
		field := make([]byte, utsFieldLen)
		if f.want == "" {
			copy(field, f.real)
		} else {
			if len(f.want) >= utsFieldLen || strings.IndexByte(f.want, 0) >= 0 {
				return spec{Kind: trap.KindCopyOut, Problem: fmt.Sprintf("Uname: %s %q must be at most %d bytes without NUL", f.name, f.want, utsFieldLen-1)}
			}
			copy(field, f.want)
		}
		buf = append(buf, field...)
	}
	s := CopyOut(0, Buffer{Arg: 0, Data: buf}).(spec)
	s.Name = fmt.Sprintf("Uname(%+v)", u)
	return s
}

// Set is a group of rules that together emulate one thing; add it with
// Policy.Apply.
type Set = func(*trap.Policy)

// Hostname makes the host name read name everywhere: uname(2) (glibc's
// gethostname) and /proc/sys/kernel/hostname (Go's os.Hostname).
func Hostname(name string) Set {
	return func(p *trap.Policy) {
		p.Trap("uname", Uname(UTS{Nodename: name}))
		VirtualFileEverywhere("/proc/sys/kernel/hostname", []byte(name+"\n"))(p)
	}
}

// Int returns a pointer to v, for the optional fields of ID.
func Int(v int) *int { return &v }

// ID is an identity view: nil fields keep the real values.
type ID struct {
	UID, EUID, SUID, GID, EGID, SGID *int
	// PID and PPID fake getpid and getppid. Beware: kill(getpid(), sig)
	// and raise(3) then aim at the fake pid.
	PID, PPID *int
	// Groups, when not nil, is the supplementary group list getgroups(2)
	// reports.
	Groups []int
}

// Identity makes the process see the ids of id: getuid, geteuid,
// getresuid, getgid, getegid, getresgid, getgroups, getpid, getppid.
func Identity(id ID) Set {
	return func(p *trap.Policy) {
		ret := func(name string, v *int) {
			if v != nil {
				p.Trap(name, Return(int64(*v)))
			}
		}
		ret("getuid", id.UID)
		ret("geteuid", id.EUID)
		ret("getgid", id.GID)
		ret("getegid", id.EGID)
		ret("getpid", id.PID)
		ret("getppid", id.PPID)
		res := func(name string, r, e, s *int, real func() (int, int, int)) {
			if r == nil && e == nil && s == nil {
				return
			}
			rr, re, rs := real()
			pick := func(v *int, def int) []byte {
				if v != nil {
					def = *v
				}
				return binary.LittleEndian.AppendUint32(nil, uint32(def))
			}
			p.Trap(name, CopyOut(0, Buffer{0, pick(r, rr)}, Buffer{1, pick(e, re)}, Buffer{2, pick(s, rs)}))
		}
		res("getresuid", id.UID, id.EUID, id.SUID, func() (int, int, int) { return unix.Getresuid() })
		res("getresgid", id.GID, id.EGID, id.SGID, func() (int, int, int) { return unix.Getresgid() })
		if id.Groups != nil {
			data := make([]byte, 0, 4*len(id.Groups))
			for _, g := range id.Groups {
				data = binary.LittleEndian.AppendUint32(data, uint32(g))
			}
			p.Trap("getgroups", spec{Kind: trap.KindGroups, Data: string(data), Name: fmt.Sprintf("Groups(%v)", id.Groups)})
		}
	}
}
