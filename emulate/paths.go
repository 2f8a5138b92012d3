package emulate

import (
	"fmt"
	"path"
	"strings"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/trap"
)

// OpenSyscalls are the calls that open a file by path.
var OpenSyscalls = []string{"open", "openat", "openat2"}

// PathSyscallNames returns the names of the path-taking syscalls this
// architecture has (arch.PathSyscalls), sorted.
func PathSyscallNames() []string { return arch.Native().PathSyscallNames() }

// cleanPrefix checks and normalizes an absolute directory prefix.
func cleanPrefix(what, p string) (string, string) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Sprintf("%s: %q is not an absolute path", what, p)
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Sprintf("%s: %q has a NUL byte", what, p)
	}
	return path.Clean(p), ""
}

// RedirectPath rewrites the path arguments of the trapped call that lie
// under from (the directory itself or below it) to the same place under to,
// and makes the call; it declines every other call. Relative paths are
// first made absolute against the calling thread's cwd or the call's dirfd
// (read from /proc/self/fd), then cleaned lexically ("." and ".."; symlinks
// are not followed). chdir is a path call too: redirect it and relative
// paths resolve inside the target tree. A rewritten path longer than
// PATH_MAX fails with ENAMETOOLONG; a bad path pointer with EFAULT.
func RedirectPath(from, to string) trap.Action {
	f, bad := cleanPrefix("RedirectPath from", from)
	t, bad2 := cleanPrefix("RedirectPath to", to)
	s := spec{Kind: trap.KindRedirect, Data: f, Data2: t, Name: fmt.Sprintf("RedirectPath(%q, %q)", from, to), Problem: bad + bad2}
	if t == "/" {
		s.Data2 = ""
	}
	return s
}

// RedirectAll applies RedirectPath(from, to) to every path-taking syscall
// (arch.PathSyscalls).
func RedirectAll(from, to string) Set {
	return func(p *trap.Policy) {
		for _, name := range PathSyscallNames() {
			p.Trap(name, RedirectPath(from, to))
		}
	}
}

// VirtualFile makes an open (open, openat, openat2) of path yield a fresh
// read-only descriptor of a memfd holding content, whoever opens it; it
// declines other paths. Opening it for writing fails with EROFS, with
// O_CREAT|O_EXCL with EEXIST, with O_DIRECTORY with ENOTDIR. stat and the
// other path calls still see the real file system.
func VirtualFile(path string, content []byte) trap.Action {
	p, bad := cleanPrefix("VirtualFile", path)
	return spec{Kind: trap.KindVirtualFile, Data: p, Data2: string(content),
		Name: fmt.Sprintf("VirtualFile(%q, %d bytes)", path, len(content)), Problem: bad}
}

// VirtualFileEverywhere traps every open call with VirtualFile.
func VirtualFileEverywhere(path string, content []byte) Set {
	return func(p *trap.Policy) {
		for _, name := range OpenSyscalls {
			if _, ok := p.Arch().SyscallNumber(name); ok {
				p.Trap(name, VirtualFile(path, content))
			}
		}
	}
}

// DenyWrites fails with EROFS the trapped call if it writes under one of
// the prefixes (an open with write access, O_CREAT, O_TRUNC or O_APPEND;
// creat, unlink, rename, mkdir, rmdir, link, symlink, mknod, truncate,
// chmod, chown, utimes, setxattr, removexattr families); it declines every
// other call. Paths are resolved as for RedirectPath.
func DenyWrites(prefixes ...string) trap.Action {
	var clean []string
	var problems []string
	for _, pre := range prefixes {
		c, bad := cleanPrefix("ReadOnly", pre)
		if bad != "" {
			problems = append(problems, bad)
		}
		clean = append(clean, c)
	}
	if len(clean) == 0 {
		problems = append(problems, "ReadOnly: no prefix")
	}
	return spec{Kind: trap.KindReadOnly, Data: strings.Join(clean, "\x00"),
		Name: fmt.Sprintf("ReadOnly(%q)", prefixes), Problem: strings.Join(problems, "; ")}
}

// ReadOnly makes the trees under prefixes read-only for the process:
// DenyWrites on every syscall that can write through a path.
func ReadOnly(prefixes ...string) Set {
	return func(p *trap.Policy) {
		for _, name := range PathSyscallNames() {
			s := arch.PathSyscalls[name]
			writes := s.Flags != -1
			for _, w := range s.Writes {
				writes = writes || w
			}
			if writes {
				p.Trap(name, DenyWrites(prefixes...))
			}
		}
	}
}
