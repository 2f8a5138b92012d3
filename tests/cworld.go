// Package tests holds trapemu's end-to-end tests. Each scenario that
// installs a filter runs in its own child process (see internal/childtest).
// This file is the C side of the tests: calls made from C code, C threads,
// an i386 int 0x80 call and the floor handler of the benchmarks.
package tests

/*
#cgo CFLAGS: -O2 -Wall
#cgo LDFLAGS: -lpthread
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <sched.h>

static long c_getppid(void) { return getppid(); }

static long c_raw(long nr) { return syscall(nr); }

static int c_chdir_errno(const char *p) {
	errno = 0;
	int r = chdir(p);
	return r == 0 ? 0 : errno;
}

// Inline syscall with no libc in between, as the benchmarks' loop uses.
static inline long raw0(long nr) {
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr) : "rcx", "r11", "memory");
	return ret;
#elif defined(__aarch64__)
	register long x8 __asm__("x8") = nr;
	register long x0 __asm__("x0");
	__asm__ volatile("svc #0" : "=r"(x0) : "r"(x8) : "memory");
	return x0;
#endif
}

// c_loop_path makes n faccessat(AT_FDCWD, path, F_OK) calls through
// syscall(3) and counts answers other than want.
static long c_loop_path(const char *path, long n, long want) {
	long wrong = 0;
	for (long i = 0; i < n; i++)
		if (syscall(SYS_faccessat, AT_FDCWD, path, F_OK) != want)
			wrong++;
	return wrong;
}

// loop makes n getppid calls and counts answers other than want.
static long c_loop(long nr, long n, long want) {
	long wrong = 0;
	for (long i = 0; i < n; i++)
		if (raw0(nr) != want)
			wrong++;
	return wrong;
}

// A job for a C thread: n calls of nr. Plain jobs expect want from an
// inline syscall loop and from syscall(3); with_arg jobs pass i&0xffff as
// the first argument and expect want plus it.
struct job { long nr, n, want, wrong; int with_arg; };

static void *job_run(void *p) {
	struct job *j = p;
	if (j->with_arg) {
		for (long i = 0; i < j->n; i++) {
			long arg = i & 0xffff;
			if (syscall(j->nr, arg) != j->want + arg)
				j->wrong++;
		}
		return 0;
	}
	j->wrong = c_loop(j->nr, j->n, j->want);
	// libc's wrapper too, through errno-setting syscall(3).
	for (long i = 0; i < j->n / 10; i++)
		if (syscall(j->nr) != j->want)
			j->wrong++;
	return 0;
}

// run_jobs starts nthreads pthreads (created now, after whatever was
// installed before) that each run the job; returns the wrong answers, or
// -1 when a thread could not be created.
static long run_jobs(int nthreads, long nr, long n, long want, int with_arg) {
	pthread_t t[64];
	struct job j[64];
	if (nthreads > 64) nthreads = 64;
	for (int i = 0; i < nthreads; i++) {
		j[i].nr = nr; j[i].n = n; j[i].want = want; j[i].wrong = 0; j[i].with_arg = with_arg;
		if (pthread_create(&t[i], 0, job_run, &j[i]) != 0) return -1;
	}
	long wrong = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(t[i], 0);
		wrong += j[i].wrong;
	}
	return wrong;
}

static long c_threads(int nthreads, long nr, long n, long want) { return run_jobs(nthreads, nr, n, want, 0); }

static long c_threads_arg(int nthreads, long nr, long n, long base) { return run_jobs(nthreads, nr, n, base, 1); }

static long c_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
	return syscall(nr, a0, a1, a2, a3, a4, a5);
}

// c_fork_call forks; the child makes syscall nr(arg) and exits with 0 if
// it returned want, 1 otherwise. Returns the child's wait status.
static int c_fork_call(long nr, long arg, long want) {
	pid_t p = fork();
	if (p == 0) {
		long r = syscall(nr, arg);
		_exit(r == want ? 0 : 1);
	}
	int st = 0;
	waitpid(p, &st, 0);
	return st;
}

// c_read_file reads up to n bytes of path with open(2)/read(2) into out;
// returns the bytes read or -errno.
static long c_read_file(const char *path, char *out, long n) {
	int fd = open(path, O_RDONLY);
	if (fd < 0) return -errno;
	long got = 0;
	for (;;) {
		long r = read(fd, out + got, n - got);
		if (r < 0) { int e = errno; close(fd); return -e; }
		if (r == 0) break;
		got += r;
	}
	close(fd);
	return got;
}

// c_write_file creates path and writes s; returns 0 or -errno.
static long c_write_file(const char *path, const char *s) {
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) return -errno;
	long r = write(fd, s, strlen(s));
	close(fd);
	return r < 0 ? -errno : 0;
}

static long c_gethostname(char *out, long n) {
	return gethostname(out, n) == 0 ? 0 : -errno;
}

// c_ids: getuid, geteuid, getresuid's three, getgroups' count and first.
static void c_ids(long *out) {
	uid_t r, e, s;
	gid_t g[16];
	out[0] = getuid();
	out[1] = geteuid();
	getresuid(&r, &e, &s);
	out[2] = r; out[3] = e; out[4] = s;
	out[5] = getgroups(16, g);
	out[6] = out[5] > 0 ? g[0] : -1;
	out[7] = getpid();
}

static void user_sigsys(int sig) { (void)sig; }

// c_set_sigsys installs a SIGSYS handler of the program's own; returns
// sigaction's result, then whether the handler in place afterwards is ours.
static int c_set_sigsys(int *kept) {
	struct sigaction sa, cur;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = user_sigsys;
	int r = sigaction(SIGSYS, &sa, 0);
	sigaction(SIGSYS, 0, &cur);
	*kept = cur.sa_handler != user_sigsys;
	return r;
}

#include <spawn.h>
extern char **environ;

// c_fork_exec runs argv via fork+execve, its stdout into out; returns the
// wait status.
static int c_fork_exec(char *const argv[], char *out, int n) {
	int p[2];
	if (pipe(p) != 0) return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]); close(p[1]);
		execve(argv[0], argv, environ);
		_exit(126);
	}
	close(p[1]);
	int got = 0, r;
	while (got < n - 1 && (r = read(p[0], out + got, n - 1 - got)) > 0) got += r;
	out[got] = 0;
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	return st;
}

// c_posix_spawn: the same with posix_spawn and a dup2 file action.
static int c_posix_spawn(char *const argv[], char *out, int n) {
	int p[2];
	if (pipe(p) != 0) return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	pid_t pid;
	int e = posix_spawn(&pid, argv[0], &fa, 0, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (e != 0) { close(p[0]); return -e; }
	int got = 0, r;
	while (got < n - 1 && (r = read(p[0], out + got, n - 1 - got)) > 0) got += r;
	out[got] = 0;
	close(p[0]);
	int st = 0;
	waitpid(pid, &st, 0);
	return st;
}

#include <linux/seccomp.h>
#include <linux/filter.h>
#include <linux/audit.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <stddef.h>

static int notify_fd = -1;

static void *notify_loop(void *arg) {
	(void)arg;
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	for (;;) {
		memset(&req, 0, sizeof req);
		if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
			if (errno == EINTR) continue;
			return 0;
		}
		memset(&resp, 0, sizeof resp);
		resp.id = req.id;
		resp.val = 4242;
		ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
}

// install_user_notify: getppid is answered by a supervisor thread through
// seccomp user notification (the other way to emulate syscalls).
static int install_user_notify(void) {
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {4, f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
	int fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0) return -1;
	notify_fd = fd;
	pthread_t t;
	return pthread_create(&t, 0, notify_loop, 0);
}

// c_block_sigsys_call blocks SIGSYS and SIGUSR1 on this thread, makes
// syscall nr, and reports what the mask then says.
static long c_block_sigsys_call(long nr, int *sigsys_blocked, int *usr1_blocked) {
	sigset_t set, cur;
	sigemptyset(&set);
	sigaddset(&set, SIGSYS);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, 0);
	long r = syscall(nr);
	pthread_sigmask(SIG_BLOCK, 0, &cur);
	*sigsys_blocked = sigismember(&cur, SIGSYS);
	*usr1_blocked = sigismember(&cur, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, 0);
	return r;
}

static volatile long in_handler_result;
static void usr2_handler(int sig) { (void)sig; in_handler_result = syscall(SYS_getppid); }

// c_call_in_full_mask_handler installs a SIGUSR2 handler that masks every
// signal and makes getppid, raises it, and returns what getppid said.
static long c_call_in_full_mask_handler(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = usr2_handler;
	sigfillset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, 0);
	in_handler_result = -1;
	raise(SIGUSR2);
	return in_handler_result;
}

// c_raw_thread_clone starts a thread with a raw clone(CLONE_VM|...) on a
// new stack whose child side only exits; returns the parent's result. The
// child never returns anywhere: this is how a thread library uses clone.
static long c_raw_thread_clone(void) {
#if defined(__x86_64__)
	static char stack[16384] __attribute__((aligned(16)));
	long flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;
	long ret;
	register long r10 __asm__("r10") = 0;
	register long r8 __asm__("r8") = 0;
	__asm__ volatile(
		"syscall\n"
		"test %%rax, %%rax\n"
		"jnz 1f\n"
		"mov $60, %%eax\n" // child: exit(0)
		"xor %%edi, %%edi\n"
		"syscall\n"
		"1:\n"
		: "=a"(ret)
		: "a"(SYS_clone), "D"(flags), "S"(stack + sizeof stack), "d"(0), "r"(r10), "r"(r8)
		: "rcx", "r11", "memory");
	usleep(10000);
	return ret;
#else
	return -38;
#endif
}

static void __attribute__((noinline)) use_stack(void) {
	volatile char big[16384];
	memset((char *)big, 1, sizeof big);
}

// c_vfork_exit vforks; the child uses some stack, as a real child does
// before execve, then _exits. Returns the child's wait status.
static int c_vfork_exit(void) {
	pid_t p = vfork();
	if (p == 0) {
		use_stack();
		_exit(3);
	}
	int st = 0;
	waitpid(p, &st, 0);
	return st;
}

static void *vfork_thread(void *arg) {
	*(int *)arg = c_vfork_exit();
	return 0;
}

// c_vfork_in_thread runs c_vfork_exit on a C thread (no signal stack: a
// signal frame lands on the thread's own stack, as in a plain C program).
static int c_vfork_in_thread(void) {
	pthread_t t;
	int st = -1;
	if (pthread_create(&t, 0, vfork_thread, &st) != 0)
		return -1;
	pthread_join(t, 0);
	return st;
}

// c_int80 makes an i386 system call (int 0x80) from this 64-bit process.
static long c_int80(long nr) {
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr) : "memory");
	return ret;
#else
	(void)nr;
	return -38;
#endif
}

// The floor: a C-only SIGSYS handler that writes the return register. Every
// trap pays at least this.
static void floor_handler(int sig, siginfo_t *si, void *vctx) {
	ucontext_t *uc = vctx;
	(void)sig; (void)si;
#if defined(__x86_64__)
	uc->uc_mcontext.gregs[REG_RAX] = 4242;
#elif defined(__aarch64__)
	uc->uc_mcontext.regs[0] = 4242;
#endif
}

static int install_floor_handler(void) {
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = floor_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	return sigaction(SIGSYS, &sa, 0);
}

static uintptr_t sigsys_handler(void) {
	struct sigaction cur;
	sigaction(SIGSYS, 0, &cur);
	return (uintptr_t)cur.sa_sigaction;
}
*/
import "C"

import (
	"syscall"
	"unsafe"
)

// CGetppid calls getppid(2) through libc.
func CGetppid() int64 { return int64(C.c_getppid()) }

// CLoopPath makes n faccessat(AT_FDCWD, path, F_OK) calls from C and
// returns how many answers differed from want.
func CLoopPath(path string, n, want int64) int64 {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	return int64(C.c_loop_path(p, C.long(n), C.long(want)))
}

// CRawSyscall calls syscall(3) with no arguments.
func CRawSyscall(nr int) int64 { return int64(C.c_raw(C.long(nr))) }

// CChdirErrno calls chdir(3) and returns errno (0 on success).
func CChdirErrno(path string) int {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	return int(C.c_chdir_errno(p))
}

// CLoop makes n syscalls nr from a C loop (inline syscall instruction) and
// returns how many answers differed from want.
func CLoop(nr int, n int64, want int64) int64 {
	return int64(C.c_loop(C.long(nr), C.long(n), C.long(want)))
}

// CThreads runs n calls in each of nthreads new pthreads; it returns the
// number of wrong answers, or -1 if a thread could not start.
func CThreads(nthreads int, nr int, n int64, want int64) int64 {
	return int64(C.c_threads(C.int(nthreads), C.long(nr), C.long(n), C.long(want)))
}

// CThreadsArg runs n calls nr(i & 0xffff) in each of nthreads new pthreads,
// expecting base + (i & 0xffff); returns the wrong answers (-1: no thread).
func CThreadsArg(nthreads int, nr int, n int64, base int64) int64 {
	return int64(C.c_threads_arg(C.int(nthreads), C.long(nr), C.long(n), C.long(base)))
}

// CSyscall6 calls syscall(3) with six arguments; -1 means see errno.
func CSyscall6(nr int, a0, a1, a2, a3, a4, a5 uintptr) (int64, error) {
	r, err := C.c_syscall6(C.long(nr), C.long(a0), C.long(a1), C.long(a2), C.long(a3), C.long(a4), C.long(a5))
	if r == -1 {
		return -1, err
	}
	return int64(r), nil
}

// CForkCall forks a C child that makes nr(arg) and exits 0 if it got want.
// It returns the child's wait status.
func CForkCall(nr int, arg, want int64) int {
	return int(C.c_fork_call(C.long(nr), C.long(arg), C.long(want)))
}

// CReadFile reads path with open(2) and read(2) from C.
func CReadFile(path string) (string, error) {
	p := C.CString(path)
	defer C.free(unsafe.Pointer(p))
	buf := make([]byte, 1<<16)
	n := C.c_read_file(p, (*C.char)(unsafe.Pointer(&buf[0])), C.long(len(buf)))
	if n < 0 {
		return "", syscall.Errno(-n)
	}
	return string(buf[:n]), nil
}

// CWriteFile creates path from C and writes s.
func CWriteFile(path, s string) error {
	p, cs := C.CString(path), C.CString(s)
	defer C.free(unsafe.Pointer(p))
	defer C.free(unsafe.Pointer(cs))
	if r := C.c_write_file(p, cs); r < 0 {
		return syscall.Errno(-r)
	}
	return nil
}

// CGethostname calls gethostname(3).
func CGethostname() (string, error) {
	buf := make([]byte, 256)
	if r := C.c_gethostname((*C.char)(unsafe.Pointer(&buf[0])), C.long(len(buf))); r < 0 {
		return "", syscall.Errno(-r)
	}
	return C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), nil
}

// CIDs returns, from C: getuid, geteuid, getresuid (3), getgroups count,
// the first group, getpid.
func CIDs() [8]int64 {
	var out [8]C.long
	C.c_ids(&out[0])
	var r [8]int64
	for i := range out {
		r[i] = int64(out[i])
	}
	return r
}

// CSetSIGSYS installs a SIGSYS handler from C; it returns sigaction's
// result and whether trapemu's handler is still in place afterwards.
func CSetSIGSYS() (int, bool) {
	var kept C.int
	r := C.c_set_sigsys(&kept)
	return int(r), kept != 0
}

func cArgv(args []string) (**C.char, func()) {
	argv := C.malloc(C.size_t(len(args)+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
	list := unsafe.Slice((**C.char)(argv), len(args)+1)
	for i, a := range args {
		list[i] = C.CString(a)
	}
	list[len(args)] = nil
	return (**C.char)(argv), func() {
		for _, p := range list[:len(args)] {
			C.free(unsafe.Pointer(p))
		}
		C.free(argv)
	}
}

// CForkExec runs args (args[0] a full path) with fork and execve from C,
// returning its stdout and wait status.
func CForkExec(args ...string) (string, int) {
	argv, free := cArgv(args)
	defer free()
	buf := make([]byte, 4096)
	st := C.c_fork_exec(argv, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	return C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), int(st)
}

// CPosixSpawn runs args with posix_spawn from C, returning its stdout and
// wait status (negative: posix_spawn's error).
func CPosixSpawn(args ...string) (string, int) {
	argv, free := cArgv(args)
	defer free()
	buf := make([]byte, 4096)
	st := C.c_posix_spawn(argv, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	return C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), int(st)
}

// InstallUserNotify makes getppid answered by a seccomp user-notification
// supervisor thread (the benchmarks' baseline).
func InstallUserNotify() bool { return C.install_user_notify() == 0 }

// CBlockSIGSYSAndCall blocks SIGSYS and SIGUSR1 from C, makes syscall
// nr, and says what the mask then shows.
func CBlockSIGSYSAndCall(nr int) (ret int64, sigsysBlocked, usr1Blocked bool) {
	var a, b C.int
	r := C.c_block_sigsys_call(C.long(nr), &a, &b)
	return int64(r), a != 0, b != 0
}

// CCallInFullMaskHandler makes getppid inside a signal handler installed
// with every signal in sa_mask.
func CCallInFullMaskHandler() int64 { return int64(C.c_call_in_full_mask_handler()) }

// CRawThreadClone starts a thread with a raw clone on a new stack.
func CRawThreadClone() int64 { return int64(C.c_raw_thread_clone()) }

// CVforkExit vforks, on a C thread, a child that exits with 3; returns
// the wait status.
func CVforkExit() int { return int(C.c_vfork_in_thread()) }

// CInt80 makes an i386 system call via int 0x80 (amd64 only).
func CInt80(nr int) int64 { return int64(C.c_int80(C.long(nr))) }

// InstallFloorHandler installs the benchmarks' C-only SIGSYS handler.
func InstallFloorHandler() bool { return C.install_floor_handler() == 0 }

// SIGSYSHandler returns the address of the current SIGSYS handler.
func SIGSYSHandler() uintptr { return uintptr(C.sigsys_handler()) }

func unsafePtr[T any](s []T) unsafe.Pointer { return unsafe.Pointer(&s[0]) }
