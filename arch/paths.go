package arch

import "sort"

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

// PathSyscallNames returns the names of the path-taking syscalls a has,
// sorted.
func (a *Info) PathSyscallNames() []string {
	var out []string
	for name := range PathSyscalls {
		if _, ok := a.SyscallNumber(name); ok {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
