// Package arch describes the CPU architectures trapemu supports: the audit
// architecture seccomp reports, the syscall name and number tables (taken from
// github.com/elastic/go-seccomp-bpf/arch, never written by hand), and where a
// signal handler's ucontext keeps the syscall number, the six arguments, the
// instruction pointer and the return value.
package arch

import (
	"fmt"
	"runtime"
	"sort"

	elastic "github.com/elastic/go-seccomp-bpf/arch"
)

// Info describes one architecture.
type Info struct {
	// Name is the Linux name of the architecture ("x86_64", "aarch64").
	Name string
	// GOARCH is the Go name of the architecture ("amd64", "arm64").
	GOARCH string
	// AuditArch is the AUDIT_ARCH_* value seccomp puts in seccomp_data.arch
	// and the kernel puts in siginfo.si_arch.
	AuditArch uint32
	// X32Bit is the bit that marks x32 ABI syscall numbers (0x40000000 on
	// x86_64); zero where the architecture has no such ABI.
	X32Bit uint32
	// Context says where a ucontext_t keeps the registers of a trapped call.
	Context ContextLayout

	names   map[string]int
	numbers map[int]string
}

// ContextLayout gives byte offsets into a ucontext_t (as the kernel writes
// it on the signal stack) of the registers a trapped system call uses.
type ContextLayout struct {
	// Nr holds the syscall number when the handler starts.
	Nr int
	// Args hold the six syscall arguments, in order.
	Args [6]int
	// IP is the instruction pointer: the address just after the syscall
	// instruction, equal to siginfo.si_call_addr.
	IP int
	// Ret is where the handler writes the return value (-errno on failure).
	Ret int
	// Size is the least number of bytes a ucontext copy must have for
	// every offset above to be inside it.
	Size int
}

// The x86_64 ucontext_t: uc_flags, uc_link, uc_stack (24 bytes), then
// mcontext_t whose gregs[] follow glibc's REG_* order.
const amd64GregsOff = 40

func amd64Greg(i int) int { return amd64GregsOff + 8*i }

// glibc's REG_* indices for x86_64.
const (
	amd64RegR8  = 0
	amd64RegR9  = 1
	amd64RegR10 = 2
	amd64RegRDI = 8
	amd64RegRSI = 9
	amd64RegRDX = 12
	amd64RegRAX = 13
	amd64RegRIP = 16
)

// The aarch64 ucontext_t: uc_flags, uc_link, uc_stack (24 bytes), a
// 128-byte uc_sigmask area, then struct sigcontext aligned to 16:
// fault_address, regs[31], sp, pc, pstate.
const arm64SigcontextOff = 176

func arm64Reg(i int) int { return arm64SigcontextOff + 8 + 8*i }

// AMD64 is x86_64 with the 64-bit syscall ABI.
var AMD64 = newInfo(elastic.X86_64, "amd64", 0x40000000, ContextLayout{
	Nr: amd64Greg(amd64RegRAX),
	Args: [6]int{
		amd64Greg(amd64RegRDI), amd64Greg(amd64RegRSI), amd64Greg(amd64RegRDX),
		amd64Greg(amd64RegR10), amd64Greg(amd64RegR8), amd64Greg(amd64RegR9),
	},
	IP:   amd64Greg(amd64RegRIP),
	Ret:  amd64Greg(amd64RegRAX),
	Size: amd64Greg(23),
})

// ARM64 is aarch64.
var ARM64 = newInfo(elastic.AARCH64, "arm64", 0, ContextLayout{
	Nr:   arm64Reg(8),
	Args: [6]int{arm64Reg(0), arm64Reg(1), arm64Reg(2), arm64Reg(3), arm64Reg(4), arm64Reg(5)},
	IP:   arm64Reg(32), // regs[31] is followed by sp, then pc
	Ret:  arm64Reg(0),
	Size: arm64Reg(34),
})

func newInfo(e *elastic.Info, goarch string, x32 uint32, ctx ContextLayout) *Info {
	return &Info{
		Name:      e.Name,
		GOARCH:    goarch,
		AuditArch: uint32(e.ID),
		X32Bit:    x32,
		Context:   ctx,
		names:     e.SyscallNames,
		numbers:   e.SyscallNumbers,
	}
}

// Native returns the architecture this program was built for.
func Native() *Info {
	a, err := Lookup(runtime.GOARCH)
	if err != nil {
		panic("trapemu: " + err.Error())
	}
	return a
}

// Lookup finds an architecture by its Go or Linux name.
func Lookup(name string) (*Info, error) {
	switch name {
	case "amd64", "x86_64":
		return AMD64, nil
	case "arm64", "aarch64":
		return ARM64, nil
	}
	return nil, fmt.Errorf("arch: unsupported architecture %q (supported: amd64, arm64)", name)
}

// ByAuditArch finds an architecture by its AUDIT_ARCH_* value.
func ByAuditArch(audit uint32) (*Info, bool) {
	switch audit {
	case AMD64.AuditArch:
		return AMD64, true
	case ARM64.AuditArch:
		return ARM64, true
	}
	return nil, false
}

// AuditArchName names any AUDIT_ARCH_* value, known to trapemu or not.
func AuditArchName(audit uint32) string {
	return elastic.AuditArch(audit).String()
}

// SyscallNumber returns the number of the named syscall.
func (a *Info) SyscallNumber(name string) (int, bool) {
	nr, ok := a.names[name]
	return nr, ok
}

// SyscallName returns the name of syscall nr, or "syscall_<nr>" when the
// table does not know it.
func (a *Info) SyscallName(nr int) string {
	if name, ok := a.numbers[nr]; ok {
		return name
	}
	return fmt.Sprintf("syscall_%d", nr)
}

// Syscalls returns every syscall name of the architecture, sorted by number.
func (a *Info) Syscalls() []string {
	nrs := make([]int, 0, len(a.numbers))
	for nr := range a.numbers {
		nrs = append(nrs, nr)
	}
	sort.Ints(nrs)
	out := make([]string, len(nrs))
	for i, nr := range nrs {
		out[i] = a.numbers[nr]
	}
	return out
}

func (a *Info) String() string { return a.Name }
