// Command trapemu runs unmodified, dynamically linked programs with the
// trapemu runtime loaded into them (LD_PRELOAD of libtrapemu-preload.so):
//
//	trapemu trace [-f] [-c] [-o FILE] [--json] [-e trace=NAMES] [--frames N] -- PROG ARGS...
//	trapemu run --policy FILE -- PROG ARGS...
//	trapemu profile [-o FILE] -- PROG ARGS...
//
// trace prints every system call the program makes (strace style, JSON
// lines, or a summary table with -c); run applies a policy file; profile
// writes the seccomp allowlist (OCI runtime-spec / Docker JSON) of the
// syscalls the run made. Build the preload object next to the command:
//
//	go build -o bin/ ./cmd/trapemu
//	go build -buildmode=c-shared -o bin/libtrapemu-preload.so ./cmd/trapemu/preload
package main

import (
	"fmt"
	"os"
)

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  trapemu trace [-f] [-c] [-o FILE] [--json] [-e trace=NAMES] [--frames N] -- PROG ARGS...
  trapemu run --policy FILE [-f] -- PROG ARGS...
  trapemu profile [-o FILE] -- PROG ARGS...
`)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var code int
	var err error
	switch os.Args[1] {
	case "trace":
		code, err = cmdTrace(os.Args[2:])
	case "run":
		code, err = cmdRun(os.Args[2:])
	case "profile":
		code, err = cmdProfile(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "trapemu:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}
