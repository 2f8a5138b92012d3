package trace

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// argKind says how to show one argument.
type argKind uint8

const (
	aHex    argKind = iota // a pointer or opaque value
	aInt                   // a signed decimal
	aFD                    // a file descriptor (AT_FDCWD shown by name)
	aPath                  // a path string (captured at the call)
	aOpen                  // open flags
	aMode                  // an octal mode
	aAt                    // AT_* flags
	aProt                  // PROT_* flags
	aMap                   // MAP_* flags
	aSig                   // a signal number
	aUint                  // an unsigned decimal (a size)
	aAccess                // access mode
	aWhence                // lseek whence
	aFlags                 // O_* flags without an access mode (O_CLOEXEC|O_NONBLOCK)
)

// sig gives the arguments of the syscalls shown in detail.
var sigs = map[string][]argKind{
	"read": {aFD, aHex, aUint}, "write": {aFD, aHex, aUint}, "pread64": {aFD, aHex, aUint, aInt}, "pwrite64": {aFD, aHex, aUint, aInt},
	"readv": {aFD, aHex, aInt}, "writev": {aFD, aHex, aInt},
	"open": {aPath, aOpen, aMode}, "openat": {aFD, aPath, aOpen, aMode}, "openat2": {aFD, aPath, aHex, aUint}, "creat": {aPath, aMode},
	"close": {aFD}, "dup": {aFD}, "dup2": {aFD, aFD}, "dup3": {aFD, aFD, aFlags},
	"stat": {aPath, aHex}, "lstat": {aPath, aHex}, "fstat": {aFD, aHex}, "newfstatat": {aFD, aPath, aHex, aAt},
	"statx": {aFD, aPath, aAt, aHex, aHex}, "statfs": {aPath, aHex}, "fstatfs": {aFD, aHex},
	"access": {aPath, aAccess}, "faccessat": {aFD, aPath, aAccess}, "faccessat2": {aFD, aPath, aAccess, aAt},
	"readlink": {aPath, aHex, aUint}, "readlinkat": {aFD, aPath, aHex, aUint},
	"execve": {aPath, aHex, aHex}, "execveat": {aFD, aPath, aHex, aHex, aAt},
	"chdir": {aPath}, "fchdir": {aFD}, "mkdir": {aPath, aMode}, "mkdirat": {aFD, aPath, aMode}, "rmdir": {aPath},
	"unlink": {aPath}, "unlinkat": {aFD, aPath, aAt}, "rename": {aPath, aPath}, "renameat": {aFD, aPath, aFD, aPath},
	"renameat2": {aFD, aPath, aFD, aPath, aHex}, "link": {aPath, aPath}, "symlink": {aHex, aPath}, "symlinkat": {aHex, aFD, aPath},
	"chmod": {aPath, aMode}, "fchmod": {aFD, aMode}, "fchmodat": {aFD, aPath, aMode}, "chown": {aPath, aInt, aInt},
	"lseek": {aFD, aInt, aWhence}, "mmap": {aHex, aUint, aProt, aMap, aFD, aHex}, "mprotect": {aHex, aUint, aProt},
	"munmap": {aHex, aUint}, "brk": {aHex}, "ioctl": {aFD, aHex, aHex}, "fcntl": {aFD, aInt, aHex},
	"getdents64": {aFD, aHex, aUint}, "pipe2": {aHex, aFlags}, "socket": {aInt, aInt, aInt}, "connect": {aFD, aHex, aUint},
	"kill": {aInt, aSig}, "tgkill": {aInt, aInt, aSig}, "exit_group": {aInt}, "exit": {aInt},
	"wait4": {aInt, aHex, aHex, aHex}, "getppid": {}, "getpid": {}, "getuid": {}, "getgid": {}, "geteuid": {}, "getegid": {},
	"gettid": {}, "uname": {aHex}, "getcwd": {aHex, aUint}, "sched_yield": {}, "nanosleep": {aHex, aHex},
	"clock_nanosleep": {aInt, aInt, aHex, aHex}, "futex": {aHex, aInt, aInt, aHex, aHex, aInt},
	"getrandom": {aHex, aUint, aHex}, "prlimit64": {aInt, aInt, aHex, aHex}, "set_tid_address": {aHex},
	"sysinfo": {aHex}, "truncate": {aPath, aInt},
	"epoll_create1": {aFlags}, "eventfd2": {aUint, aFlags}, "epoll_ctl": {aFD, aInt, aFD, aHex},
	"epoll_pwait": {aFD, aHex, aInt, aInt, aHex, aUint}, "epoll_wait": {aFD, aHex, aInt, aInt},
	"bind": {aFD, aHex, aUint}, "listen": {aFD, aInt}, "accept4": {aFD, aHex, aHex, aFlags}, "accept": {aFD, aHex, aHex},
	"setsockopt": {aFD, aInt, aInt, aHex, aUint}, "getsockopt": {aFD, aInt, aInt, aHex, aHex},
	"getsockname": {aFD, aHex, aHex}, "getpeername": {aFD, aHex, aHex}, "shutdown": {aFD, aInt},
	"sendto": {aFD, aHex, aUint, aHex, aHex, aUint}, "recvfrom": {aFD, aHex, aUint, aHex, aHex, aHex},
	"sendmsg": {aFD, aHex, aHex}, "recvmsg": {aFD, aHex, aHex}, "socketpair": {aInt, aInt, aInt, aHex},
	"rt_sigaction": {aSig, aHex, aHex, aUint}, "rt_sigprocmask": {aInt, aHex, aHex, aUint},
	"sched_getaffinity": {aInt, aUint, aHex}, "arch_prctl": {aHex, aHex}, "prctl": {aInt, aHex, aHex, aHex, aHex},
	"poll": {aHex, aUint, aInt}, "ppoll": {aHex, aUint, aHex, aHex, aUint}, "pselect6": {aInt, aHex, aHex, aHex, aHex, aHex},
	"fsync": {aFD}, "fdatasync": {aFD}, "umask": {aMode}, "getrlimit": {aInt, aHex}, "setpgid": {aInt, aInt},
	"getpgid": {aInt}, "getpgrp": {}, "setsid": {}, "getsid": {aInt}, "getresuid": {aHex, aHex, aHex},
	"getresgid": {aHex, aHex, aHex}, "getgroups": {aInt, aHex}, "pipe": {aHex}, "sigaltstack": {aHex, aHex},
	"madvise": {aHex, aUint, aInt}, "mremap": {aHex, aUint, aUint, aHex, aHex}, "fchown": {aFD, aInt, aInt},
	"fchownat": {aFD, aPath, aInt, aInt, aAt}, "lchown": {aPath, aInt, aInt}, "fchmodat2": {aFD, aPath, aMode, aAt},
	"mknod": {aPath, aMode, aHex}, "mknodat": {aFD, aPath, aMode, aHex}, "linkat": {aFD, aPath, aFD, aPath, aAt},
	"close_range": {aFD, aFD, aHex}, "memfd_create": {aHex, aHex}, "process_vm_readv": {aInt, aHex, aUint, aHex, aUint, aHex},
	"process_vm_writev": {aInt, aHex, aUint, aHex, aUint, aHex}, "sendfile": {aFD, aFD, aHex, aUint},
	"copy_file_range": {aFD, aHex, aFD, aHex, aUint, aHex}, "flock": {aFD, aInt}, "getdents": {aFD, aHex, aUint},
	"fadvise64": {aFD, aInt, aInt, aInt}, "fallocate": {aFD, aInt, aInt, aInt}, "inotify_init1": {aFlags},
	"inotify_add_watch": {aFD, aPath, aHex}, "timerfd_create": {aInt, aFlags}, "signalfd4": {aFD, aHex, aUint, aFlags},
	"set_robust_list": {aHex, aUint}, "rseq": {aHex, aUint, aHex, aHex}, "tkill": {aInt, aSig},
	"setuid": {aInt}, "setgid": {aInt}, "setresuid": {aInt, aInt, aInt}, "setresgid": {aInt, aInt, aInt},
	"capget": {aHex, aHex}, "capset": {aHex, aHex}, "sched_setaffinity": {aInt, aUint, aHex}, "ftruncate": {aFD, aInt}, "utimensat": {aFD, aPath, aHex, aAt},
}

var openFlags = []struct {
	v    uint64
	name string
}{
	{unix.O_CREAT, "O_CREAT"}, {unix.O_EXCL, "O_EXCL"}, {unix.O_NOCTTY, "O_NOCTTY"}, {unix.O_TRUNC, "O_TRUNC"},
	{unix.O_APPEND, "O_APPEND"}, {unix.O_NONBLOCK, "O_NONBLOCK"}, {unix.O_DSYNC, "O_DSYNC"}, {unix.O_DIRECT, "O_DIRECT"},
	{unix.O_LARGEFILE, "O_LARGEFILE"}, {unix.O_DIRECTORY, "O_DIRECTORY"}, {unix.O_NOFOLLOW, "O_NOFOLLOW"},
	{unix.O_NOATIME, "O_NOATIME"}, {unix.O_CLOEXEC, "O_CLOEXEC"}, {unix.O_PATH, "O_PATH"}, {unix.O_TMPFILE &^ unix.O_DIRECTORY, "__O_TMPFILE"},
	{unix.O_SYNC &^ unix.O_DSYNC, "__O_SYNC"},
}

func flagString(v uint64, names []struct {
	v    uint64
	name string
}, zero string) string {
	var parts []string
	if zero != "" {
		parts = append(parts, zero)
	}
	for _, f := range names {
		if f.v != 0 && v&f.v == f.v {
			parts = append(parts, f.name)
			v &^= f.v
		}
	}
	if v != 0 {
		parts = append(parts, fmt.Sprintf("%#x", v))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

func openString(v uint64) string {
	acc := []string{"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"}[v&3]
	return flagString(v&^3, openFlags, acc)
}

var atFlags = []struct {
	v    uint64
	name string
}{{unix.AT_SYMLINK_NOFOLLOW, "AT_SYMLINK_NOFOLLOW"}, {unix.AT_REMOVEDIR, "AT_REMOVEDIR"}, {unix.AT_SYMLINK_FOLLOW, "AT_SYMLINK_FOLLOW"},
	{unix.AT_NO_AUTOMOUNT, "AT_NO_AUTOMOUNT"}, {unix.AT_EMPTY_PATH, "AT_EMPTY_PATH"}, {unix.AT_EACCESS, "AT_EACCESS"}}

var protFlags = []struct {
	v    uint64
	name string
}{{unix.PROT_READ, "PROT_READ"}, {unix.PROT_WRITE, "PROT_WRITE"}, {unix.PROT_EXEC, "PROT_EXEC"}}

var mapFlags = []struct {
	v    uint64
	name string
}{{unix.MAP_SHARED, "MAP_SHARED"}, {unix.MAP_PRIVATE, "MAP_PRIVATE"}, {unix.MAP_FIXED, "MAP_FIXED"},
	{unix.MAP_ANONYMOUS, "MAP_ANONYMOUS"}, {unix.MAP_DENYWRITE, "MAP_DENYWRITE"}, {unix.MAP_NORESERVE, "MAP_NORESERVE"},
	{unix.MAP_STACK, "MAP_STACK"}, {unix.MAP_FIXED_NOREPLACE, "MAP_FIXED_NOREPLACE"}, {unix.MAP_POPULATE, "MAP_POPULATE"}}

var accessFlags = []struct {
	v    uint64
	name string
}{{unix.R_OK, "R_OK"}, {unix.W_OK, "W_OK"}, {unix.X_OK, "X_OK"}}

func arg(kind argKind, v uint64, paths *[]string) string {
	switch kind {
	case aInt:
		return strconv.FormatInt(int64(v), 10)
	case aUint:
		return strconv.FormatUint(v, 10)
	case aFD:
		if int32(v) == unix.AT_FDCWD {
			return "AT_FDCWD"
		}
		return strconv.FormatInt(int64(int32(v)), 10)
	case aPath:
		if len(*paths) > 0 {
			s := (*paths)[0]
			*paths = (*paths)[1:]
			return strconv.Quote(s)
		}
		if v == 0 {
			return "NULL"
		}
		return fmt.Sprintf("%#x", v)
	case aOpen:
		return openString(v)
	case aFlags:
		return flagString(v, openFlags, "")
	case aMode:
		return fmt.Sprintf("%#o", v)
	case aAt:
		return flagString(v, atFlags, "")
	case aProt:
		if v == 0 {
			return "PROT_NONE"
		}
		return flagString(v, protFlags, "")
	case aMap:
		return flagString(v, mapFlags, "")
	case aAccess:
		if v == 0 {
			return "F_OK"
		}
		return flagString(v, accessFlags, "")
	case aWhence:
		if n := []string{"SEEK_SET", "SEEK_CUR", "SEEK_END", "SEEK_DATA", "SEEK_HOLE"}; v < uint64(len(n)) {
			return n[v]
		}
	case aSig:
		if name := unix.SignalName(unix.Signal(v)); name != "" {
			return name
		}
		return strconv.FormatUint(v, 10)
	}
	if v == 0 {
		return "NULL"
	}
	return fmt.Sprintf("%#x", v)
}

// Call formats the call strace's way: `openat(AT_FDCWD, "/etc/passwd",
// O_RDONLY|O_CLOEXEC) = 3` or `... = -1 ENOENT (No such file or directory)`.
func Call(r *Record) string {
	var b strings.Builder
	b.WriteString(r.Name)
	b.WriteByte('(')
	kinds, known := sigs[r.Name]
	paths := r.Paths
	if !known {
		// Unknown shape: its path arguments where known, six values.
		kinds = []argKind{aHex, aHex, aHex, aHex, aHex, aHex}
	}
	if (r.Name == "open" || r.Name == "openat") && len(kinds) > 0 {
		// Like strace: the mode only when the flags create a file.
		flags := r.Args[len(kinds)-2]
		if flags&(unix.O_CREAT|(unix.O_TMPFILE&^unix.O_DIRECTORY)) == 0 {
			kinds = kinds[:len(kinds)-1]
		}
	}
	for i, k := range kinds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(arg(k, r.Args[i], &paths))
	}
	b.WriteString(") = ")
	b.WriteString(Result(r))
	return b.String()
}

// Result formats the return value: a number, or -1 and the errno's name.
func Result(r *Record) string {
	switch r.Name {
	case "exit", "exit_group":
		return "?" // they do not return
	}
	if r.Errno != 0 {
		msg := r.Errno.Error()
		if msg != "" {
			msg = strings.ToUpper(msg[:1]) + msg[1:]
		}
		return fmt.Sprintf("-1 %s (%s)", unix.ErrnoName(r.Errno), msg)
	}
	switch r.Name {
	case "mmap", "brk":
		return fmt.Sprintf("%#x", uint64(r.Ret))
	}
	return strconv.FormatInt(r.Ret, 10)
}
