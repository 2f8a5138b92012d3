// Command sysdebug traces its own run — Go code and the C code it links —
// and prints which syscalls fired, strace -c style, plus the first few
// calls in full with their call sites.
//
//	go run ./examples/sysdebug
package main

/*
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

// Some C work: a temporary file written and read back through stdio.
static int c_work(void) {
	char name[] = "/tmp/sysdebug-XXXXXX";
	int fd = mkstemp(name);
	if (fd < 0) return -1;
	FILE *f = fdopen(fd, "w+");
	fprintf(f, "hello from C, pid %d\n", (int)getpid());
	rewind(f);
	char buf[64];
	int n = fgets(buf, sizeof buf, f) ? 1 : 0;
	fclose(f);
	unlink(name);
	return n;
}
*/
import "C"

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/trapemu/trapemu/sigsys/trace"
	"github.com/trapemu/trapemu/trap"
)

func main() {
	rt, err := trap.Install(trap.NewPolicy().TraceAll())
	if err != nil {
		fmt.Fprintln(os.Stderr, "sysdebug:", err)
		os.Exit(1)
	}
	_ = rt
	var first bytes.Buffer
	summary := trace.NewSummary(os.Stdout)
	summary.Unobservable = trap.Unobservable()
	tr, err := trace.Start(trace.Options{Sinks: []trace.Sink{trace.Text(&first, trace.NewSymbolizer()), summary}})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sysdebug:", err)
		os.Exit(1)
	}

	// Go work: files, the network stack (loopback), the environment.
	os.WriteFile(os.TempDir()+"/sysdebug-go", []byte("hello from Go"), 0o644)
	os.ReadFile(os.TempDir() + "/sysdebug-go")
	os.Remove(os.TempDir() + "/sysdebug-go")
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
		}
		l.Close()
	}
	// C work.
	C.c_work()

	tr.Flush()
	fmt.Println("the first calls that named a file, with their call sites:")
	shown := 0
	for _, l := range strings.Split(first.String(), "\n") {
		if strings.Contains(l, `"/`) && shown < 8 {
			fmt.Println("  " + l)
			shown++
		}
	}
	fmt.Println()
	tr.Stop() // prints the summary
}
