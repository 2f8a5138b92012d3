package sigsys

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/trapemu/trapemu/arch"
)

// frame builds a synthetic siginfo and ucontext as the kernel would write
// them for a trapped call.
func frame(a *arch.Info, nr int, args [6]uint64, ip uint64, tag uint16) (si, uc []byte) {
	le := binary.LittleEndian
	si = make([]byte, SiginfoSize)
	le.PutUint32(si[siSigno:], sigSYS)
	le.PutUint32(si[siErrno:], uint32(tag))
	le.PutUint32(si[siCode:], sysSeccomp)
	le.PutUint64(si[siCallAddr:], ip)
	le.PutUint32(si[siSyscall:], uint32(nr))
	le.PutUint32(si[siArch:], a.AuditArch)
	uc = make([]byte, 1024)
	for i, off := range a.Context.Args {
		le.PutUint64(uc[off:], args[i])
	}
	le.PutUint64(uc[a.Context.IP:], ip)
	// amd64 keeps the number in RAX (which is also the return register);
	// arm64 keeps it in x8 and x0 holds the first argument.
	le.PutUint64(uc[a.Context.Nr:], uint64(nr))
	return si, uc
}

func TestDecode(t *testing.T) {
	args := [6]uint64{1, 2, 3, 0xffff_ffff_ffff_fff0, 5, 1 << 40}
	for _, a := range []*arch.Info{arch.AMD64, arch.ARM64} {
		nr, _ := a.SyscallNumber("openat")
		si, uc := frame(a, nr, args, 0x4000_1234, 7)
		c, err := Decode(si, uc, 99)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		if c.Nr != nr || c.Name != "openat" || c.Args != args || c.CallAddr != 0x4000_1234 || c.Tag != 7 || c.TID != 99 || c.Arch != a {
			t.Fatalf("%s: decoded %+v", a.Name, c)
		}
	}
}

func TestDecodeKnownOffsets(t *testing.T) {
	// glibc's REG_RDI=8, REG_RAX=13, REG_RIP=16 after 40 bytes of header.
	if c := arch.AMD64.Context; c.Args[0] != 40+8*8 || c.Nr != 40+13*8 || c.IP != 40+16*8 || c.Args[3] != 40+2*8 {
		t.Fatalf("amd64 layout %+v", c)
	}
	// aarch64: sigcontext at 176: fault_address, regs[0..30], sp, pc.
	if c := arch.ARM64.Context; c.Args[0] != 184 || c.Nr != 184+8*8 || c.IP != 184+32*8 || c.Ret != 184 {
		t.Fatalf("arm64 layout %+v", c)
	}
}

func TestDecodeRejects(t *testing.T) {
	a := arch.AMD64
	si, uc := frame(a, 110, [6]uint64{}, 0x1000, 1)

	bad := append([]byte(nil), si...)
	binary.LittleEndian.PutUint32(bad[siCode:], 0) // SI_USER: kill(2)
	if _, err := Decode(bad, uc, 0); !errors.Is(err, ErrNotSeccomp) {
		t.Errorf("kill-sent SIGSYS: %v", err)
	}
	bad = append([]byte(nil), si...)
	binary.LittleEndian.PutUint32(bad[siSigno:], 11)
	if _, err := Decode(bad, uc, 0); !errors.Is(err, ErrNotSIGSYS) {
		t.Errorf("SIGSEGV: %v", err)
	}
	bad = append([]byte(nil), si...)
	binary.LittleEndian.PutUint32(bad[siArch:], 0x40000003)
	if _, err := Decode(bad, uc, 0); !errors.Is(err, ErrForeignArch) {
		t.Errorf("i386: %v", err)
	}
	badUC := append([]byte(nil), uc...)
	binary.LittleEndian.PutUint64(badUC[a.Context.IP:], 0x2000)
	if _, err := Decode(si, badUC, 0); !errors.Is(err, ErrFrameMismatch) {
		t.Errorf("IP mismatch: %v", err)
	}
	badUC = append([]byte(nil), uc...)
	binary.LittleEndian.PutUint64(badUC[a.Context.Nr:], 39)
	if _, err := Decode(si, badUC, 0); !errors.Is(err, ErrFrameMismatch) {
		t.Errorf("nr mismatch: %v", err)
	}
	if _, err := Decode(si[:10], uc, 0); !errors.Is(err, ErrShortFrame) {
		t.Errorf("short siginfo: %v", err)
	}
	if _, err := Decode(si, uc[:100], 0); !errors.Is(err, ErrShortFrame) {
		t.Errorf("short ucontext: %v", err)
	}
}
