// Package emulate holds the ready-made actions that answer trapped calls.
// Each is answered inside the C SIGSYS handler, so it serves Go code, C code
// reached through cgo and foreign threads alike.
package emulate

import (
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

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

// CopyOut writes data to the caller's buffer pointed to by argument arg
// (0..5) and makes the call return ret. A bad buffer address makes the call
// fail with EFAULT, as the kernel's own copy would.
func CopyOut(arg int, data []byte, ret int64) trap.Action {
	return spec{Kind: trap.KindCopyOut, Arg: arg, Data: string(data), Value: ret}
}

// UTS is a system identity as uname(2) reports it. Empty fields keep the
// real system's values (read when Uname is called).
type UTS struct {
	Sysname, Nodename, Release, Version, Machine, Domainname string
}

// utsFieldLen is the size of each struct utsname field, with its NUL.
const utsFieldLen = 65

// Uname answers uname(2) with u, for Go code (syscall.Uname, os.Hostname
// fallbacks) and C code (uname(3), gethostname(3) in glibc) alike.
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
	s := spec{Kind: trap.KindCopyOut, Arg: 0, Data: string(buf), Value: 0}
	s.Name = fmt.Sprintf("Uname(%+v)", u)
	return s
}
