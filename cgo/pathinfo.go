package cgo

import "github.com/trapemu/trapemu/arch"

// The handler's table of path arguments (RedirectPath, ReadOnly,
// VirtualFile, and the tracer's captured paths), from arch.PathSyscalls.
func init() {
	a := arch.Native()
	for name, s := range arch.PathSyscalls {
		nr, ok := a.SyscallNumber(name)
		if !ok {
			continue
		}
		p := [2]int{-1, -1}
		d := [2]int{-1, -1}
		writes := 0
		for i := range s.Paths {
			p[i], d[i] = s.Paths[i], s.Dirfds[i]
			if s.Writes[i] {
				writes |= 1 << i
			}
		}
		SetPathInfo(nr, p[0], d[0], p[1], d[1], s.Flags, writes)
	}
}
