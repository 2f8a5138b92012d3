package emulate

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/cgo"
	"github.com/trapemu/trapemu/trap"
)

// PathSyscall says where a syscall's path arguments are.
type PathSyscall struct {
	// Paths are the argument indexes of paths (one or two).
	Paths []int
	// Dirfds are the dirfd argument each path is relative to (-1: cwd).
	Dirfds []int
	// Flags is the open-flags argument (-1 none, -2 openat2's struct
	// open_how); when set, the flags decide whether the call writes.
	Flags int
	// Writes says which paths the call writes (by position in Paths).
	Writes []bool
}

func ps(paths, dirfds []int, flags int, writes ...bool) PathSyscall {
	return PathSyscall{Paths: paths, Dirfds: dirfds, Flags: flags, Writes: writes}
}

var (
	p0  = []int{0}
	p1  = []int{1}
	d_  = []int{-1}
	d0  = []int{0}
	two = []int{0, 1}
	dd_ = []int{-1, -1}
)

// PathSyscalls lists the path-taking syscalls trapemu knows, by name (the
// names missing on an architecture are skipped there). symlink's target is
// a link's content, not a path that is looked up: it is not listed.
var PathSyscalls = map[string]PathSyscall{
	"open":              ps(p0, d_, 1, true),
	"openat":            ps(p1, d0, 2, true),
	"openat2":           ps(p1, d0, -2, true),
	"creat":             ps(p0, d_, -1, true),
	"stat":              ps(p0, d_, -1, false),
	"lstat":             ps(p0, d_, -1, false),
	"newfstatat":        ps(p1, d0, -1, false),
	"fstatat64":         ps(p1, d0, -1, false),
	"statx":             ps(p1, d0, -1, false),
	"statfs":            ps(p0, d_, -1, false),
	"access":            ps(p0, d_, -1, false),
	"faccessat":         ps(p1, d0, -1, false),
	"faccessat2":        ps(p1, d0, -1, false),
	"readlink":          ps(p0, d_, -1, false),
	"readlinkat":        ps(p1, d0, -1, false),
	"execve":            ps(p0, d_, -1, false),
	"execveat":          ps(p1, d0, -1, false),
	"chdir":             ps(p0, d_, -1, false),
	"chroot":            ps(p0, d_, -1, false),
	"unlink":            ps(p0, d_, -1, true),
	"unlinkat":          ps(p1, d0, -1, true),
	"mkdir":             ps(p0, d_, -1, true),
	"mkdirat":           ps(p1, d0, -1, true),
	"rmdir":             ps(p0, d_, -1, true),
	"rename":            ps(two, dd_, -1, true, true),
	"renameat":          ps([]int{1, 3}, []int{0, 2}, -1, true, true),
	"renameat2":         ps([]int{1, 3}, []int{0, 2}, -1, true, true),
	"link":              ps(two, dd_, -1, true, true),
	"linkat":            ps([]int{1, 3}, []int{0, 2}, -1, true, true),
	"symlink":           ps(p1, d_, -1, true),
	"symlinkat":         ps([]int{2}, []int{1}, -1, true),
	"mknod":             ps(p0, d_, -1, true),
	"mknodat":           ps(p1, d0, -1, true),
	"truncate":          ps(p0, d_, -1, true),
	"chmod":             ps(p0, d_, -1, true),
	"fchmodat":          ps(p1, d0, -1, true),
	"fchmodat2":         ps(p1, d0, -1, true),
	"chown":             ps(p0, d_, -1, true),
	"lchown":            ps(p0, d_, -1, true),
	"fchownat":          ps(p1, d0, -1, true),
	"utime":             ps(p0, d_, -1, true),
	"utimes":            ps(p0, d_, -1, true),
	"futimesat":         ps(p1, d0, -1, true),
	"utimensat":         ps(p1, d0, -1, true),
	"setxattr":          ps(p0, d_, -1, true),
	"lsetxattr":         ps(p0, d_, -1, true),
	"removexattr":       ps(p0, d_, -1, true),
	"lremovexattr":      ps(p0, d_, -1, true),
	"getxattr":          ps(p0, d_, -1, false),
	"lgetxattr":         ps(p0, d_, -1, false),
	"listxattr":         ps(p0, d_, -1, false),
	"llistxattr":        ps(p0, d_, -1, false),
	"inotify_add_watch": ps(p1, d_, -1, false),
	"name_to_handle_at": ps(p1, d0, -1, false),
	"open_tree":         ps(p1, d0, -1, false),
}

// OpenSyscalls are the calls that open a file by path.
var OpenSyscalls = []string{"open", "openat", "openat2"}

func init() {
	a := arch.Native()
	for name, s := range PathSyscalls {
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
		cgo.SetPathInfo(nr, p[0], d[0], p[1], d[1], s.Flags, writes)
	}
}

// PathSyscallNames returns the names of the path-taking syscalls this
// architecture has, sorted.
func PathSyscallNames() []string {
	a := arch.Native()
	var out []string
	for name := range PathSyscalls {
		if _, ok := a.SyscallNumber(name); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

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

// RedirectAll applies RedirectPath(from, to) to every path-taking syscall.
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
			s := PathSyscalls[name]
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
