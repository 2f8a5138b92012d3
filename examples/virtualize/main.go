// Command virtualize gives itself, and the C code it links, a different view
// of the system: its parent pid, its user id and its uname, faked by a
// trapemu policy answered inside the SIGSYS handler. It prints what the Go
// code and the C code saw before and after Install.
//
//	go run ./examples/virtualize
package main

/*
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

// What legacy C code sees, through libc.
static void c_view(char *out, int n) {
	struct utsname u;
	if (uname(&u) != 0) {
		snprintf(out, n, "uname failed");
		return;
	}
	snprintf(out, n, "ppid=%d uid=%d nodename=%s release=%s",
		(int)getppid(), (int)getuid(), u.nodename, u.release);
}
*/
import "C"

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/trap"
)

func goView() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "uname: " + err.Error()
	}
	return fmt.Sprintf("ppid=%d uid=%d nodename=%s release=%s",
		syscall.Getppid(), syscall.Getuid(), cstr(u.Nodename[:]), cstr(u.Release[:]))
}

func cView() string {
	buf := make([]byte, 256)
	C.c_view((*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	return cstr(buf)
}

func cstr[T int8 | uint8](b []T) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func main() {
	fmt.Println("before Install")
	fmt.Println("  Go:", goView())
	fmt.Println("  C: ", cView())

	p := trap.NewPolicy()
	p.Trap("getppid", emulate.Return(1))
	p.Trap("getuid", emulate.Return(1000))
	p.Trap("uname", emulate.Uname(emulate.UTS{Nodename: "legacy-box", Release: "2.6.32-legacy"}))
	rt, err := trap.Install(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "virtualize:", err)
		os.Exit(1)
	}

	fmt.Println("after Install")
	fmt.Println("  Go:", goView())
	fmt.Println("  C: ", cView())
	fmt.Println("rule hits:")
	for _, r := range rt.Stats().Rules {
		fmt.Printf("  %-60s %d\n", r.Desc, r.Hits)
	}
}
