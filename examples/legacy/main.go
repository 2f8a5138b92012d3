// Command legacy hosts an unmodifiable legacy C library (legacy.c) in a Go
// program and virtualizes what it needs: it must run as root, reads
// /etc/legacy-app.conf, asks uname for the host, and appends to
// /var/log/legacy-app.log. None of that exists or is allowed here; trapemu
// answers it all.
//
//	go run ./examples/legacy
package main

/*
#include <stdlib.h>
#include "legacy.h"
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/sigsys"
	"github.com/trapemu/trapemu/trap"
)

const config = "mode=production\nowner=accounting\n"

func runLegacy() (string, int) {
	buf := make([]byte, 4096)
	rc := C.legacy_start((*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	return C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), int(rc)
}

// openConfig is a Go handler for openat: it serves the library's config
// file from memory, and lets every other open through.
func openConfig(c *sigsys.Call) sigsys.Result {
	path, err := c.String(1)
	if err != nil {
		return sigsys.Fail(unix.EFAULT)
	}
	if path != "/etc/legacy-app.conf" {
		return sigsys.Passthrough()
	}
	fd, err := unix.MemfdCreate("legacy-app.conf", unix.MFD_CLOEXEC)
	if err != nil {
		return sigsys.Fail(err.(unix.Errno))
	}
	if _, err := unix.Write(fd, []byte(config)); err != nil {
		unix.Close(fd)
		return sigsys.Fail(unix.EIO)
	}
	unix.Seek(fd, 0, 0)
	return sigsys.Return(int64(fd)) // the caller owns the descriptor now
}

func main() {
	logDir, err := os.MkdirTemp("", "legacy-log")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	fmt.Println("== the library, as things are")
	report, rc := runLegacy()
	fmt.Printf("%s(exit %d)\n\n", report, rc)

	p := trap.NewPolicy()
	p.Apply(emulate.Identity(emulate.ID{UID: emulate.Int(0), EUID: emulate.Int(0)}))
	p.Trap("uname", emulate.Uname(emulate.UTS{Nodename: "mainframe", Release: "2.4.20-legacy"}))
	// openat: first the log directory's redirect (it declines other
	// paths), then the Go handler; where Go can't run, a plain passthrough.
	p.Trap("openat", emulate.RedirectPath("/var/log", logDir))
	p.Trap("openat", emulate.Func(openConfig, emulate.Passthrough()))
	rt, err := trap.Install(p)
	if err != nil {
		fmt.Fprintln(os.Stderr, "legacy:", err)
		os.Exit(1)
	}

	fmt.Println("== the library, virtualized")
	report, rc = runLegacy()
	fmt.Printf("%s(exit %d)\n\n", report, rc)

	logged, _ := os.ReadFile(filepath.Join(logDir, "legacy-app.log"))
	fmt.Printf("== what it logged, found in %s\n%s\n", logDir, logged)
	fmt.Println("== rule hits")
	for _, r := range rt.Stats().Rules {
		fmt.Printf("%-70.70s %d\n", r.Desc, r.Hits)
	}
	os.RemoveAll(logDir)
}
