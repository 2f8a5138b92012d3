package emulate_test

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/sigsys"
	"github.com/trapemu/trapemu/trap"
)

// Compose actions on one syscall: the first that does not decline answers.
// (Installing is left out: a filter can't be removed from a test process.)
func Example() {
	p := trap.NewPolicyFor(arch.AMD64)
	p.Trap("openat", emulate.VirtualFile("/etc/legacy.conf", []byte("mode=virtual\n")))
	p.Trap("openat", emulate.RedirectPath("/etc/app", "/srv/app"))
	p.Apply(emulate.Identity(emulate.ID{UID: emulate.Int(0)}), emulate.ReadOnly("/srv"))
	p.Trap("openat", emulate.Func(func(c *sigsys.Call) sigsys.Result {
		path, err := c.String(1)
		if err != nil {
			return sigsys.Fail(unix.EFAULT)
		}
		if path == "/etc/shadow" {
			return sigsys.Fail(unix.EACCES)
		}
		return sigsys.Passthrough()
	}, emulate.Passthrough()))
	prog, err := p.Compile(trap.CompileOptions{EscapeIP: 0x7f0000001000})
	if err != nil {
		fmt.Println(err)
		return
	}
	openat, _ := arch.AMD64.SyscallNumber("openat")
	for _, c := range prog.Counters {
		if c.Nr == openat {
			fmt.Println("openat answers with:", prog.Actions[c.Tag-prog.FirstTag])
		}
	}
	// Output:
	// openat answers with: VirtualFile("/etc/legacy.conf", 13 bytes) then RedirectPath("/etc/app", "/srv/app") then ReadOnly(["/srv"]) then Func(fallback Passthrough())
}
