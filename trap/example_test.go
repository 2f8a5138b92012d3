package trap_test

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/trap"
)

// Install a policy: from then on every getppid in the process, from Go or
// C, on any thread, returns 4242. (Not run here: a filter can't be
// removed, and it would stay on the test process.)
func ExampleInstall() {
	p := trap.NewPolicy()
	p.Trap("getppid", emulate.Return(4242))      // answered inside the handler
	p.Trap("getpgid", emulate.Passthrough())     // re-issued for real
	p.Trap("chdir", emulate.Errno(unix.EROFS))   // fails with our errno
	p.Deny("ptrace", int(unix.EPERM))            // the kernel fails it, no signal
	p.Kill("kexec_load")                         // the kernel kills the process
	p.Trap("socket", emulate.Errno(unix.EACCES), // only for AF_INET
		trap.Arg32(0).Eq(unix.AF_INET))
	rt, err := trap.Install(p)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(syscall.Getppid())
	for _, r := range rt.Stats().Rules {
		fmt.Println(r.Desc, r.Hits)
	}
}

// A policy can be asked what it does with a call without installing it.
func ExamplePolicy_Evaluate() {
	p := trap.NewPolicyFor(arch.AMD64)
	p.Trap("socket", emulate.Errno(unix.EACCES), trap.Arg32(0).Eq(unix.AF_INET))
	p.Deny("socket", int(unix.EAFNOSUPPORT), trap.Arg32(0).Eq(unix.AF_NETLINK))

	socket, _ := arch.AMD64.SyscallNumber("socket")
	for _, family := range []uint64{unix.AF_INET, unix.AF_INET6, unix.AF_NETLINK} {
		ret, err := p.Evaluate(trap.SeccompData{Nr: int32(socket), Arch: arch.AMD64.AuditArch, IP: 0x401000, Args: [6]uint64{family}},
			trap.CompileOptions{EscapeIP: 0x7f0000001000})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("family %2d: %#08x\n", family, ret)
	}
	// Output:
	// family  2: 0x00030001
	// family 10: 0x7fff0000
	// family 16: 0x00050061
}

// Mistakes are reported all at once, each with its rule and reason.
func ExamplePolicy_Compile() {
	p := trap.NewPolicyFor(arch.AMD64)
	p.Trap("getppid", emulate.Return(1))
	p.Trap("no_such_call", emulate.Return(1))
	p.Deny("ptrace", 0)
	p.Trap("rt_sigreturn", emulate.Passthrough())
	_, err := p.Compile(trap.CompileOptions{})
	fmt.Println(err)
	// Output:
	// rule 2 Trap("no_such_call", Return(1)): unknown syscall "no_such_call" on x86_64
	// rule 3 Deny("ptrace", 0): errno out of range: errno 0 is outside 1..4095
	// rule 4 Trap("rt_sigreturn", Passthrough()): syscall cannot be trapped safely: the SIGSYS handler returns through it: a trap there can never be answered (Policy.AllowUnsafe overrides)
}
