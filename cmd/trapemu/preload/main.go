// Command preload is the part of trapemu that `trapemu trace` loads into a
// program with LD_PRELOAD. Build it as a shared object:
//
//	go build -buildmode=c-shared -o libtrapemu-preload.so ./cmd/trapemu/preload
//
// At load it connects to the socket named by TRAPEMU_SOCKET, installs the
// policy the environment describes (TRAPEMU_TRACE: "all" or a comma list
// of syscalls; TRAPEMU_POLICY: a policy file) and streams every trapped
// call's record to the socket. Without TRAPEMU_SOCKET it does nothing.
package main

import "C"

import (
	"github.com/trapemu/trapemu/cmd/trapemu/internal/agent"
)

//export trapemuPreloadInit
func trapemuPreloadInit() { agent.Init() }

func main() {}
