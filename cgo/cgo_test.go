package cgo

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/arch"
)

func TestLayoutMatchesArch(t *testing.T) {
	args, nr, ip, ret := CLayout()
	ctx := arch.Native().Context
	if args != ctx.Args || nr != ctx.Nr || ip != ctx.IP || ret != ctx.Ret {
		t.Fatalf("C says args=%v nr=%d ip=%d ret=%d; arch says %+v", args, nr, ip, ret, ctx)
	}
}

func TestKindsMatchC(t *testing.T) {
	if got, want := cKinds(), KindReturn*100000000+KindErrno*10000000+KindPassthrough*1000000+KindCopyOut*100000+KindGo*10000+KindRedirect*1000+KindVirtualFile*100+KindReadOnly*10+KindGroups; got != want {
		t.Fatalf("C kinds %d, Go kinds %d", got, want)
	}
}

func TestSyscall6(t *testing.T) {
	// No filter here: the passthrough instruction is an ordinary syscall.
	if got, want := Syscall6(unix.SYS_GETPID, 0, 0, 0, 0, 0, 0), int64(unix.Getpid()); got != want {
		t.Fatalf("getpid through the escape = %d, want %d", got, want)
	}
	if got := Syscall6(unix.SYS_CLOSE, ^uintptr(0), 0, 0, 0, 0, 0); got != -int64(unix.EBADF) {
		t.Fatalf("close(-1) = %d, want -EBADF", got)
	}
}
