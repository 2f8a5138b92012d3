/* Exec support. The filter survives execve and the handler does not, so a
 * program started by a filtered process would die at its first trapped
 * call. Instead, a trapped execve is handed to the spawner — a process
 * forked before the filter was loaded, so it has none — which starts the
 * program; the caller then execs the proxy (a tiny static image at a fixed
 * address whose one syscall instruction the filter lets through), which
 * waits for the program and exits with its status.
 *
 * The spawner runs only this C code after fork(): raw syscalls, no
 * allocation, no Go. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <ucontext.h>

#include "trapemu.h"

#define SP_MAXFDS 200
#define SP_BLOB (120 * 1024)
#define SP_MAXARGS 4096
#define SP_MAXKIDS 256

/* The request a trapped execve sends. Strings follow in the blob:
 * path\0 argv[0]\0 ... envp[0]\0 ... */
struct sp_req {
	uint32_t magic;
	int32_t nargv, nenv, nfds;
	int32_t targets[SP_MAXFDS]; /* the caller's fd numbers of the passed fds */
	int32_t dirfd_index;        /* index among the passed fds of the dirfd, or -1 */
	int32_t flags;              /* execveat flags */
	int32_t umask;
	int32_t pgid;
	int32_t pid;       /* the caller */
	uint64_t sigmask;  /* the calling thread's blocked signals */
	uint64_t sigign;   /* signals the caller ignores */
	uint32_t bloblen;
	char blob[SP_BLOB];
};

#define SP_MAGIC 0x74726170u

/* A reply: kind 0 exec failed (value = errno), 3 started (value = pid),
 * 1 exited (value = status), 2 killed (value = signal). */
struct sp_msg {
	uint32_t kind;
	int32_t value;
};

static int te_spawn_sock = -1; /* the process's end; CLOEXEC */
static int te_proxy_fd = -1;   /* memfd holding the proxy image */
static struct sp_req te_sp_req; /* one exec at a time: taken by te_sp_busy */
static int te_sp_busy;

static long sys(long nr, long a, long b, long c, long d, long e, long f) { return te_syscall6(nr, a, b, c, d, e, f); }

/* ---- the spawner process ---- */

struct sp_kid {
	int pid;
	int reply; /* socket to the proxy */
};

static struct sp_kid sp_kids[SP_MAXKIDS];
static int sp_nkids;

static void sp_send(int fd, uint32_t kind, int32_t value) {
	struct sp_msg m = {kind, value};
	sys(SYS_sendto, fd, (long)&m, sizeof m, MSG_NOSIGNAL, 0, 0);
}

static void sp_reap(void) {
	for (;;) {
		int st = 0;
		long pid = sys(SYS_wait4, -1, (long)&st, WNOHANG, 0, 0, 0);
		if (pid <= 0)
			return;
		for (int i = 0; i < sp_nkids; i++) {
			if (sp_kids[i].pid != pid)
				continue;
			if (WIFSIGNALED(st))
				sp_send(sp_kids[i].reply, 2, WTERMSIG(st));
			else
				sp_send(sp_kids[i].reply, 1, WEXITSTATUS(st));
			sys(SYS_close, sp_kids[i].reply, 0, 0, 0, 0, 0);
			sp_kids[i] = sp_kids[--sp_nkids];
			break;
		}
	}
}

/* In the new child: set up what execve would have kept, then exec. */
static void sp_child(struct sp_req *r, int *fds, int nfds, int errpipe) {
	char *argv[SP_MAXARGS + 1], *envp[SP_MAXARGS + 1];
	char *p = r->blob, *path = p;
	p += strlen(p) + 1;
	for (int i = 0; i < r->nargv && i < SP_MAXARGS; i++, p += strlen(p) + 1)
		argv[i] = p;
	argv[r->nargv < SP_MAXARGS ? r->nargv : SP_MAXARGS] = 0;
	int traced = 0, ne = 0;
	for (int i = 0; i < r->nenv && i < SP_MAXARGS - 1; i++, p += strlen(p) + 1) {
		if (!strncmp(p, "TRAPEMU_EXECED_BY=", 18))
			continue;
		traced |= !strncmp(p, "TRAPEMU_SOCKET=", 15);
		envp[ne++] = p;
	}
	/* Under trapemu trace, tell the new program whose exec it replaces. */
	static char by[40] = "TRAPEMU_EXECED_BY=";
	if (traced) {
		char d[16];
		int m = 0, v = r->pid, k = 18;
		do {
			d[m++] = (char)('0' + v % 10);
			v /= 10;
		} while (v);
		while (m)
			by[k++] = d[--m];
		by[k] = 0;
		envp[ne++] = by;
	}
	envp[ne] = 0;

	sys(SYS_setpgid, 0, r->pgid, 0, 0, 0, 0); /* join the caller's job */
	/* fds[0] is the reply socket, fds[1] the cwd, then the caller's fds:
	 * move them all high first, so that placing one never clobbers another. */
	int hi[SP_MAXFDS + 2];
	for (int i = 0; i < nfds; i++)
		hi[i] = (int)sys(SYS_fcntl, fds[i], F_DUPFD_CLOEXEC, 1024, 0, 0, 0);
	int dirfd = AT_FDCWD;
	if (sys(SYS_fchdir, hi[1], 0, 0, 0, 0, 0) != 0) {
		/* keep going: a cwd that is gone is the caller's problem too */
	}
	for (int i = 2; i < nfds; i++) {
		int target = r->targets[i - 2];
		sys(SYS_dup3, hi[i], target, 0, 0, 0, 0);
		if (r->dirfd_index == i - 2)
			dirfd = target;
	}
	/* Everything else goes: fds 0..1023 not placed above, and the copies. */
	for (int fd = 0; fd < 1024; fd++) {
		int keep = fd == errpipe;
		for (int i = 0; i < r->nfds && !keep; i++)
			keep = r->targets[i] == fd;
		if (!keep)
			sys(SYS_close, fd, 0, 0, 0, 0, 0);
	}
	sys(SYS_close_range, 1024, ~0u, 0, 0, 0, 0);
	if (errpipe < 1024) {
		/* already kept above */
	}
	sys(SYS_umask, r->umask, 0, 0, 0, 0, 0);
	/* Signal dispositions: default, but what the caller ignored. */
	struct {
		unsigned long handler, flags, restorer, mask;
	} sa = {0, 0, 0, 0};
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sa.handler = (r->sigign >> (sig - 1)) & 1 ? (unsigned long)SIG_IGN : (unsigned long)SIG_DFL;
		sys(SYS_rt_sigaction, sig, (long)&sa, 0, 8, 0, 0);
	}
	sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&r->sigmask, 0, 8, 0, 0);
	long e = sys(SYS_execveat, dirfd, (long)path, (long)argv, (long)envp, r->flags, 0);
	int err = (int)-e;
	sys(SYS_write, errpipe, (long)&err, sizeof err, 0, 0, 0);
	sys(SYS_exit_group, 127, 0, 0, 0, 0, 0);
}

/* Serve one request; returns 0 when the socket is closed (the process and
 * every fork of it that could still exec are gone). */
static int sp_request(int sock) {
	static struct sp_req r;
	int fds[SP_MAXFDS + 2];
	char cbuf[CMSG_SPACE(sizeof(int) * (SP_MAXFDS + 2))];
	struct iovec iov = {&r, sizeof r};
	struct msghdr mh = {0};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof cbuf;
	long n = sys(SYS_recvmsg, sock, (long)&mh, MSG_CMSG_CLOEXEC, 0, 0, 0);
	if (n == 0 || (n < 0 && n != -EINTR && n != -EAGAIN))
		return 0;
	if (n < 0)
		return 1;
	int nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			memcpy(fds + nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
			nfds += k;
		}
	if (nfds < 2 || r.magic != SP_MAGIC || nfds != r.nfds + 2) {
		for (int i = 0; i < nfds; i++)
			sys(SYS_close, fds[i], 0, 0, 0, 0, 0);
		return 1;
	}
	int reply = fds[0];
	int pipefd[2];
	if (sys(SYS_pipe2, (long)pipefd, O_CLOEXEC, 0, 0, 0, 0) != 0 || sp_nkids >= SP_MAXKIDS) {
		sp_send(reply, 0, EAGAIN);
		goto done;
	}
	long pid = sys(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0); /* fork */
	if (pid == 0) {
		sys(SYS_close, pipefd[0], 0, 0, 0, 0, 0);
		sp_child(&r, fds, nfds, pipefd[1]);
	}
	sys(SYS_close, pipefd[1], 0, 0, 0, 0, 0);
	if (pid < 0) {
		sp_send(reply, 0, (int)-pid);
		sys(SYS_close, pipefd[0], 0, 0, 0, 0, 0);
		goto done;
	}
	int err = 0;
	long got;
	do
		got = sys(SYS_read, pipefd[0], (long)&err, sizeof err, 0, 0, 0);
	while (got == -EINTR);
	sys(SYS_close, pipefd[0], 0, 0, 0, 0, 0);
	if (got == sizeof err) { /* exec failed: the caller's execve fails */
		int st;
		sys(SYS_wait4, pid, (long)&st, 0, 0, 0, 0);
		sp_send(reply, 0, err);
		goto done;
	}
	sp_send(reply, 3, (int)pid);
	sp_kids[sp_nkids].pid = (int)pid;
	sp_kids[sp_nkids].reply = (int)sys(SYS_fcntl, reply, F_DUPFD_CLOEXEC, 3, 0, 0, 0);
	sp_nkids++;
done:
	for (int i = 0; i < nfds; i++)
		sys(SYS_close, fds[i], 0, 0, 0, 0, 0);
	return 1;
}

static void sp_loop(int sock) {
	int open = 1;
	/* Hold nothing of the program's: a pipe the spawner kept open would
	 * never see EOF. Only the socket stays; stdio goes to /dev/null. */
	if (sock != 3) {
		sys(SYS_dup3, sock, 3, O_CLOEXEC, 0, 0, 0);
		sock = 3;
	}
	sys(SYS_close_range, 0, 2, 0, 0, 0, 0);
	sys(SYS_close_range, 4, ~0u, 0, 0, 0, 0);
	long null = sys(SYS_openat, AT_FDCWD, (long)"/dev/null", O_RDWR, 0, 0, 0);
	if (null >= 0) {
		sys(SYS_dup3, null, 1, 0, 0, 0, 0);
		sys(SYS_dup3, null, 2, 0, 0, 0, 0);
	}
	/* Job-control signals are for the programs, not the spawner. */
	struct {
		unsigned long handler, flags, restorer, mask;
	} ign = {(unsigned long)SIG_IGN, 0, 0, 0};
	int quiet[] = {SIGINT, SIGQUIT, SIGTSTP, SIGTTIN, SIGTTOU, SIGHUP, SIGPIPE, SIGTERM};
	for (unsigned i = 0; i < sizeof quiet / sizeof quiet[0]; i++)
		sys(SYS_rt_sigaction, quiet[i], (long)&ign, 0, 8, 0, 0);
	uint64_t none = 0;
	sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&none, 0, 8, 0, 0);
	while (open || sp_nkids > 0) {
		struct pollfd pf[SP_MAXKIDS + 1];
		int n = 0;
		if (open)
			pf[n++] = (struct pollfd){sock, POLLIN, 0};
		for (int i = 0; i < sp_nkids; i++)
			pf[n++] = (struct pollfd){sp_kids[i].reply, 0, 0};
		struct timespec ts = {0, 20 * 1000 * 1000};
		sys(SYS_ppoll, (long)pf, n, (long)&ts, 0, 8, 0);
		int k = 0;
		if (open) {
			if (pf[0].revents & POLLIN)
				open = sp_request(sock);
			else if (pf[0].revents & (POLLHUP | POLLERR))
				open = 0;
			k = 1;
		}
		/* A proxy that went away (killed): its program goes too. */
		for (int i = 0; k < n; i++, k++)
			if (i < sp_nkids && (pf[k].revents & (POLLHUP | POLLERR)))
				sys(SYS_kill, sp_kids[i].pid, SIGKILL, 0, 0, 0, 0);
		sp_reap();
	}
	sys(SYS_exit_group, 0, 0, 0, 0, 0, 0);
}

int te_spawner_start(int proxy_fd) {
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		return -errno;
	/* Fork twice, so the spawner is nobody's child here: wait() in the
	 * program must never find it. */
	long mid = sys(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
	if (mid < 0) {
		close(sv[0]);
		close(sv[1]);
		return (int)mid;
	}
	if (mid == 0) {
		sys(SYS_close, sv[0], 0, 0, 0, 0, 0);
		long sp = sys(SYS_clone, SIGCHLD, 0, 0, 0, 0, 0);
		if (sp == 0) {
			sp_loop(sv[1]);
		}
		sys(SYS_exit_group, sp < 0 ? 1 : 0, 0, 0, 0, 0, 0);
	}
	close(sv[1]);
	int st;
	waitpid((pid_t)mid, &st, 0);
	te_spawn_sock = sv[0];
	te_proxy_fd = proxy_fd;
	return 0;
}

/* ---- the caller's side: a trapped execve ---- */

static long te_str_into(char *dst, unsigned long room, uintptr_t src) { return te_read_cstr(dst, room, src, -E2BIG); }

/* Append the NULL-terminated string array at src to the blob; returns the
 * count or -errno. */
static long te_strv_into(struct sp_req *r, uintptr_t src) {
	long count = 0;
	if (src == 0)
		return 0; /* Linux takes NULL as an empty array */
	for (;;) {
		uint64_t ptrs[32];
		long n = te_copy_in(ptrs, src + (uintptr_t)count * 8, sizeof ptrs);
		if (n < 8)
			return -EFAULT;
		for (long i = 0; i < n / 8; i++) {
			if (ptrs[i] == 0)
				return count;
			if (count >= SP_MAXARGS)
				return -E2BIG;
			long len = te_str_into(r->blob + r->bloblen, SP_BLOB - r->bloblen, (uintptr_t)ptrs[i]);
			if (len < 0)
				return len;
			r->bloblen += (uint32_t)len + 1;
			count++;
		}
	}
}

/* Act as the proxy right here: wait for the program's end and end alike. */
static void te_proxy_inline(int fd) {
	struct sp_msg m;
	for (;;) {
		long n = sys(SYS_read, fd, (long)&m, sizeof m, 0, 0, 0);
		if (n == -EINTR)
			continue;
		if (n != sizeof m)
			sys(SYS_exit_group, 127, 0, 0, 0, 0, 0);
		if (m.kind == 1)
			sys(SYS_exit_group, m.value, 0, 0, 0, 0, 0);
		if (m.kind == 2) {
			struct {
				unsigned long handler, flags, restorer, mask;
			} dfl = {0, 0, 0, 0};
			sys(SYS_rt_sigaction, m.value, (long)&dfl, 0, 8, 0, 0);
			sys(SYS_kill, sys(SYS_getpid, 0, 0, 0, 0, 0, 0), m.value, 0, 0, 0, 0);
			/* blocked here: it is delivered as the handler returns; make sure */
			uint64_t mask = ~0ull & ~(1ull << (m.value - 1));
			sys(SYS_rt_sigprocmask, SIG_SETMASK, (long)&mask, 0, 8, 0, 0);
			sys(SYS_exit_group, 128 + m.value, 0, 0, 0, 0, 0);
		}
	}
}

long te_exec(const struct te_action *a, struct te_call *c) {
	(void)a;
	if (te_spawn_sock < 0)
		return te_pass(c);
	int at = c->nr != SYS_execve; /* execveat */
	uintptr_t path = (uintptr_t)c->args[at ? 1 : 0], argv = (uintptr_t)c->args[at ? 2 : 1], envp = (uintptr_t)c->args[at ? 3 : 2];
	while (__atomic_exchange_n(&te_sp_busy, 1, __ATOMIC_ACQUIRE))
		sys(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
	struct sp_req *r = &te_sp_req;
	long ret = 0;
	int cwd = -1, rs[2] = {-1, -1};
	r->magic = SP_MAGIC;
	r->bloblen = 0;
	r->flags = at ? (int32_t)c->args[4] : 0;
	r->dirfd_index = -1;
	long n = te_str_into(r->blob, SP_BLOB, path);
	if (n < 0) {
		ret = n == -E2BIG ? -ENAMETOOLONG : n;
		goto out;
	}
	r->bloblen = (uint32_t)n + 1;
	if ((n = te_strv_into(r, argv)) < 0) {
		ret = n;
		goto out;
	}
	r->nargv = (int32_t)n;
	if ((n = te_strv_into(r, envp)) < 0) {
		ret = n;
		goto out;
	}
	r->nenv = (int32_t)n;

	/* The fds the new program would inherit: those without FD_CLOEXEC. */
	static int fds[SP_MAXFDS + 2];
	int nfds = 0;
	long dir = sys(SYS_openat, AT_FDCWD, (long)"/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0);
	if (dir < 0) {
		ret = dir;
		goto out;
	}
	static char dents[2048]; /* under te_sp_busy, like the request */
	for (;;) {
		long got = sys(SYS_getdents64, dir, (long)dents, sizeof dents, 0, 0, 0);
		if (got <= 0)
			break;
		for (long off = 0; off < got;) {
			struct dirent64 *d = (struct dirent64 *)(dents + off);
			off += d->d_reclen;
			if (d->d_name[0] < '0' || d->d_name[0] > '9')
				continue;
			int fd = 0;
			for (const char *q = d->d_name; *q; q++)
				fd = fd * 10 + (*q - '0');
			if (fd == dir)
				continue;
			long fl = sys(SYS_fcntl, fd, F_GETFD, 0, 0, 0, 0);
			int wanted = fl >= 0 && !(fl & FD_CLOEXEC);
			if (at && fd == (int)c->args[0])
				wanted = 1, r->dirfd_index = nfds;
			if (!wanted)
				continue;
			if (nfds >= SP_MAXFDS) {
				sys(SYS_close, dir, 0, 0, 0, 0, 0);
				ret = -EMFILE;
				goto out;
			}
			r->targets[nfds] = fd;
			fds[2 + nfds++] = fd;
		}
	}
	sys(SYS_close, dir, 0, 0, 0, 0, 0);
	r->nfds = nfds;
	cwd = (int)sys(SYS_openat, AT_FDCWD, (long)".", O_PATH | O_CLOEXEC | O_DIRECTORY, 0, 0, 0);
	if (sys(SYS_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, (long)rs, 0, 0) != 0) {
		ret = -EAGAIN;
		goto out;
	}
	fds[0] = rs[1];
	fds[1] = cwd >= 0 ? cwd : (int)sys(SYS_openat, AT_FDCWD, (long)"/", O_PATH | O_CLOEXEC, 0, 0, 0);
	long um = sys(SYS_umask, 022, 0, 0, 0, 0, 0);
	sys(SYS_umask, um, 0, 0, 0, 0, 0);
	r->umask = (int32_t)um;
	r->pgid = (int32_t)sys(SYS_getpgid, 0, 0, 0, 0, 0, 0);
	r->pid = (int32_t)sys(SYS_getpid, 0, 0, 0, 0, 0, 0);
	r->sigmask = *(uint64_t *)&((ucontext_t *)c->uc)->uc_sigmask;
	r->sigign = 0;
	for (int sig = 1; sig <= 64; sig++) {
		struct {
			unsigned long handler, flags, restorer, mask;
		} cur;
		if (sig != SIGKILL && sig != SIGSTOP && sys(SYS_rt_sigaction, sig, 0, (long)&cur, 8, 0, 0) == 0 &&
		    cur.handler == (unsigned long)SIG_IGN)
			r->sigign |= 1ull << (sig - 1);
	}

	static char cbuf[CMSG_SPACE(sizeof(int) * (SP_MAXFDS + 2))];
	memset(cbuf, 0, sizeof cbuf);
	struct iovec iov = {r, offsetof(struct sp_req, blob) + r->bloblen};
	struct msghdr mh = {0};
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)(nfds + 2));
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)(nfds + 2));
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)(nfds + 2));
	long sent = sys(SYS_sendmsg, te_spawn_sock, (long)&mh, MSG_NOSIGNAL, 0, 0, 0);
	sys(SYS_close, rs[1], 0, 0, 0, 0, 0);
	rs[1] = -1;
	if (sent < 0) {
		ret = sent == -EPIPE || sent == -ECONNREFUSED ? -ENOEXEC : sent;
		goto out;
	}
	__atomic_store_n(&te_sp_busy, 0, __ATOMIC_RELEASE);
	struct sp_msg m;
	long got;
	do
		got = sys(SYS_read, rs[0], (long)&m, sizeof m, 0, 0, 0);
	while (got == -EINTR);
	if (got != sizeof m || m.kind == 0) {
		sys(SYS_close, rs[0], 0, 0, 0, 0, 0);
		if (cwd >= 0)
			sys(SYS_close, cwd, 0, 0, 0, 0, 0);
		return got != sizeof m ? -ENOEXEC : -m.value;
	}
	/* Started. This process becomes the proxy: it execs the proxy image
	 * (a vfork parent waits for exactly that), on fd 3 the reply socket. A
	 * vfork child shares its parent thread's TLS: leave no ids there. */
	te_forget_self();
	sys(SYS_dup3, rs[0], 3, 0, 0, 0, 0);
	if (te_proxy_fd >= 0) {
		char *pargv[] = {"trapemu-proxy", 0};
		char *penvp[] = {0};
		sys(SYS_execveat, te_proxy_fd, (long)"", (long)pargv, (long)penvp, AT_EMPTY_PATH, 0);
	}
	te_proxy_inline(3);
	return -ENOEXEC;
out:
	__atomic_store_n(&te_sp_busy, 0, __ATOMIC_RELEASE);
	if (cwd >= 0)
		sys(SYS_close, cwd, 0, 0, 0, 0, 0);
	if (rs[0] >= 0)
		sys(SYS_close, rs[0], 0, 0, 0, 0, 0);
	if (rs[1] >= 0)
		sys(SYS_close, rs[1], 0, 0, 0, 0, 0);
	return ret;
}

int te_exec_ready(void) { return te_spawn_sock >= 0; }
