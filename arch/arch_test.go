package arch

import (
	"runtime"
	"testing"
)

func TestTables(t *testing.T) {
	cases := []struct {
		a        *Info
		name     string
		nr       int
		audit    uint32
		linuxArc string
	}{
		{AMD64, "getppid", 110, 0xc000003e, "x86_64"},
		{AMD64, "openat", 257, 0xc000003e, "x86_64"},
		{ARM64, "getppid", 173, 0xc00000b7, "aarch64"},
		{ARM64, "openat", 56, 0xc00000b7, "aarch64"},
	}
	for _, c := range cases {
		if nr, ok := c.a.SyscallNumber(c.name); !ok || nr != c.nr {
			t.Errorf("%s %s = %d %v, want %d", c.a, c.name, nr, ok, c.nr)
		}
		if got := c.a.SyscallName(c.nr); got != c.name {
			t.Errorf("%s %d = %s", c.a, c.nr, got)
		}
		if c.a.AuditArch != c.audit || c.a.Name != c.linuxArc {
			t.Errorf("%s: audit %#x", c.a, c.a.AuditArch)
		}
		if b, ok := ByAuditArch(c.audit); !ok || b != c.a {
			t.Errorf("ByAuditArch(%#x)", c.audit)
		}
	}
	if _, ok := ARM64.SyscallNumber("open"); ok {
		t.Error("arm64 has no open(2)")
	}
	if got := AMD64.SyscallName(99999); got != "syscall_99999" {
		t.Error(got)
	}
	if AuditArchName(0x40000003) != "i386" {
		t.Error(AuditArchName(0x40000003))
	}
	if _, err := Lookup("mips"); err == nil {
		t.Error("mips accepted")
	}
	if Native().GOARCH != runtime.GOARCH {
		t.Error("Native")
	}
	if n := len(AMD64.Syscalls()); n < 300 {
		t.Errorf("amd64 has %d syscalls", n)
	}
}
