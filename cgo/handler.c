#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/uio.h>
#include <ucontext.h>

#include "trapemu.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

#if defined(__x86_64__)
#define TE_AUDIT_ARCH 0xc000003eu
#define CTX_NR(uc) ((uc)->uc_mcontext.gregs[REG_RAX])
#define CTX_IP(uc) ((uc)->uc_mcontext.gregs[REG_RIP])
#define CTX_RET(uc) ((uc)->uc_mcontext.gregs[REG_RAX])
#define CTX_A0(uc) ((uc)->uc_mcontext.gregs[REG_RDI])
#define CTX_A1(uc) ((uc)->uc_mcontext.gregs[REG_RSI])
#define CTX_A2(uc) ((uc)->uc_mcontext.gregs[REG_RDX])
#define CTX_A3(uc) ((uc)->uc_mcontext.gregs[REG_R10])
#define CTX_A4(uc) ((uc)->uc_mcontext.gregs[REG_R8])
#define CTX_A5(uc) ((uc)->uc_mcontext.gregs[REG_R9])
#define CTX_SP(uc) ((uc)->uc_mcontext.gregs[REG_RSP])
#define CTX_FP(uc) ((uc)->uc_mcontext.gregs[REG_RBP])
#elif defined(__aarch64__)
#define TE_AUDIT_ARCH 0xc00000b7u
#define CTX_NR(uc) ((uc)->uc_mcontext.regs[8])
#define CTX_IP(uc) ((uc)->uc_mcontext.pc)
#define CTX_RET(uc) ((uc)->uc_mcontext.regs[0])
#define CTX_A0(uc) ((uc)->uc_mcontext.regs[0])
#define CTX_A1(uc) ((uc)->uc_mcontext.regs[1])
#define CTX_A2(uc) ((uc)->uc_mcontext.regs[2])
#define CTX_A3(uc) ((uc)->uc_mcontext.regs[3])
#define CTX_A4(uc) ((uc)->uc_mcontext.regs[4])
#define CTX_A5(uc) ((uc)->uc_mcontext.regs[5])
#define CTX_SP(uc) ((uc)->uc_mcontext.sp)
#define CTX_FP(uc) ((uc)->uc_mcontext.regs[29])
#else
#error "trapemu supports amd64 and arm64"
#endif

#define TE_NTAGS 65536

struct te_global_stats te_stats;

static struct te_action *te_actions[TE_NTAGS];
static struct sigaction te_prev;
static int te_active;

/* Set on Go service threads: their own syscalls are passed through, never
 * handed to a Go handler again. initial-exec: allocated with the thread. */
__thread int te_on_service_thread __attribute__((tls_model("initial-exec")));

/* Code whose syscalls are made for real, untraced, whatever the policy says:
 * the Go runtime of trapemu's own agent when it is preloaded into a program
 * (its calls are not the program's). */
static uintptr_t te_quiet_lo, te_quiet_hi;

void te_set_quiet_range(uintptr_t lo, uintptr_t hi) {
	te_quiet_lo = lo;
	te_quiet_hi = hi;
}

extern char te_escape[]; /* defined next to the syscall instruction */

uintptr_t te_escape_ip(void) { return (uintptr_t)te_escape; }

uint64_t te_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

static inline void te_count(uint64_t *p) { __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }

void te_publish(unsigned tag, struct te_action *a) {
	if (tag > 0 && tag < TE_NTAGS)
		__atomic_store_n(&te_actions[tag], a, __ATOMIC_RELEASE);
}

long te_pass(const struct te_call *c) {
	/* Making an execve "for real" means through the spawner, when there is
	 * one: the new program must not inherit the filter. */
	if ((c->nr == SYS_execve || c->nr == SYS_execveat) && te_exec_ready())
		return te_exec(0, (struct te_call *)c);
	return te_syscall6(c->nr, c->args[0], c->args[1], c->args[2], c->args[3], c->args[4], c->args[5]);
}

/* Write len bytes to the caller's address dst as the kernel's copy_to_user
 * would: a bad address fails with -EFAULT instead of crashing the handler.
 * process_vm_writev on our own pid needs no ptrace permission. */
long te_copy_out(uintptr_t dst, const void *src, unsigned long len) {
	struct iovec local = {(void *)src, len};
	struct iovec remote = {(void *)dst, len};
	long pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	long n = te_syscall6(SYS_process_vm_writev, pid, (long)&local, 1, (long)&remote, 1, 0);
	if (n == (long)len)
		return 0;
	return n < 0 && n != -EFAULT ? n : -EFAULT;
}

/* Read up to len bytes from the caller's address src; returns the bytes
 * read (fewer at an unreadable page) or -EFAULT if none could be. */
long te_copy_in(void *dst, uintptr_t src, unsigned long len) {
	struct iovec local = {dst, len};
	struct iovec remote = {(void *)src, len};
	long pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	long n = te_syscall6(SYS_process_vm_readv, pid, (long)&local, 1, (long)&remote, 1, 0);
	if (n <= 0)
		return -EFAULT;
	return n;
}

/* Find the counter of syscall nr among a's (sorted by nr). */
static inline uint64_t *te_counter_of(const struct te_action *a, int nr) {
	uint32_t lo = 0, hi = a->ncounters;
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		int v = a->counters[mid].nr;
		if (v == nr)
			return &a->counters[mid].hits;
		if (v < nr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (uint64_t *)&a->other_hits;
}

static long te_groups(const struct te_action *a, const struct te_call *c) {
	long n = a->len / 4; /* gid_t */
	long size = (int)c->args[0];
	if (size < 0)
		return -EINVAL;
	if (size == 0)
		return n;
	if (size < n)
		return -EINVAL;
	if (n > 0) {
		long r = te_copy_out((uintptr_t)c->args[1], a->data, a->len);
		if (r < 0)
			return r;
	}
	return n;
}

/* Die of SIGSYS, as the kernel's SECCOMP_RET_KILL_PROCESS does: default
 * disposition, then the signal; it is blocked in here and is delivered as
 * the handler returns. */
static long te_kill(void) {
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} dfl = {0, 0, 0, 0};
	te_syscall6(SYS_rt_sigaction, SIGSYS, (long)&dfl, 0, 8, 0, 0);
	long pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	long tid = te_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	te_syscall6(SYS_tgkill, pid, tid, SIGSYS, 0, 0, 0);
	return -ENOSYS;
}

#define TE_SIGBIT(s) (1ull << ((s)-1))

/* rt_sigprocmask made on the caller's mask, the one sigreturn restores
 * (uc_sigmask), with SIGSYS never blocked: a thread that blocked SIGSYS
 * would be killed at its next trapped call. What the caller reads back
 * has SIGSYS unblocked. */
static long te_sigmask(struct te_call *c) {
	ucontext_t *uc = (ucontext_t *)c->uc;
	uint64_t *cur = (uint64_t *)(void *)&uc->uc_sigmask;
	uint64_t old = *cur, nw = 0;
	if ((unsigned long)c->args[3] != 8)
		return -EINVAL;
	if (c->args[1]) {
		if (te_copy_in(&nw, (uintptr_t)c->args[1], 8) != 8)
			return -EFAULT;
		switch ((int)c->args[0]) {
		case SIG_BLOCK:
			nw |= old;
			break;
		case SIG_UNBLOCK:
			nw = old & ~nw;
			break;
		case SIG_SETMASK:
			break;
		default:
			return -EINVAL;
		}
		nw &= ~(TE_SIGBIT(SIGKILL) | TE_SIGBIT(SIGSTOP) | TE_SIGBIT(SIGSYS));
	}
	if (c->args[2] && te_copy_out((uintptr_t)c->args[2], &old, 8) < 0)
		return -EFAULT;
	if (c->args[1])
		*cur = nw;
	return 0;
}

/* rt_sigaction with SIGSYS taken out of the new handler's sa_mask: a
 * trapped call inside that handler must not find SIGSYS blocked. */
static long te_sigaction(struct te_call *c) {
	struct {
		unsigned long handler, flags, restorer;
		uint64_t mask;
	} act;
	if (!c->args[1] || (int)c->args[0] == SIGSYS)
		return te_pass(c);
	if (te_copy_in(&act, (uintptr_t)c->args[1], sizeof act) != (long)sizeof act)
		return -EFAULT;
	act.mask &= ~TE_SIGBIT(SIGSYS);
	return te_syscall6(SYS_rt_sigaction, c->args[0], (long)&act, c->args[2], c->args[3], 0, 0);
}

static long te_run_one(const struct te_action *a, struct te_call *c) {
	switch (a->kind) {
	case TE_KIND_RETURN:
		return a->value;
	case TE_KIND_ERRNO:
		return -a->value;
	case TE_KIND_PASSTHROUGH:
		return te_pass(c);
	case TE_KIND_COPYOUT:
		for (uint32_t i = 0; i < a->nouts && i < TE_MAX_OUTS; i++) {
			long r = te_copy_out((uintptr_t)c->args[a->outs[i].arg % 6], a->outs[i].data, a->outs[i].len);
			if (r < 0)
				return r;
		}
		return a->value;
	case TE_KIND_GO:
		return te_go(a, c);
	case TE_KIND_REDIRECT:
		return te_redirect(a, c);
	case TE_KIND_VFILE:
		return te_vfile(a, c);
	case TE_KIND_READONLY:
		return te_readonly(a, c);
	case TE_KIND_GROUPS:
		return te_groups(a, c);
	case TE_KIND_KILL:
		return te_kill();
	case TE_KIND_EXEC:
		return te_exec(a, c);
	case TE_KIND_SIGMASK:
		return te_sigmask(c);
	case TE_KIND_SIGACTION:
		return te_sigaction(c);
	}
	return -ENOSYS;
}

/* Run a chain of actions: the first that does not decline answers; if all
 * decline, the call is made for real. */
long te_run(const struct te_action *a, struct te_call *c) {
	for (; a; a = a->next) {
		long r = te_run_one(a, c);
		if (r != TE_DECLINE)
			return r;
	}
	return te_pass(c);
}

void te_handler(int sig, siginfo_t *si, void *vctx) {
	int saved_errno = errno;
	ucontext_t *uc = (ucontext_t *)vctx;
	(void)sig;

	if (si->si_code != SYS_SECCOMP) {
		/* kill(2), tgkill(2), sigqueue(3): not a trap. Nothing to answer,
		 * no register to touch: the interrupted code goes on. */
		te_count(&te_stats.not_traps);
		goto out;
	}
	unsigned tag = (unsigned)si->si_errno;
	long nr = si->si_syscall;
	struct te_action *a = tag < TE_NTAGS ? __atomic_load_n(&te_actions[tag], __ATOMIC_ACQUIRE) : 0;
	if (__builtin_expect(a == 0, 0)) {
		te_count(&te_stats.unknown_tag);
		CTX_RET(uc) = -ENOSYS;
		goto out;
	}
	if (__builtin_expect(si->si_arch != TE_AUDIT_ARCH || (uintptr_t)si->si_call_addr != (uintptr_t)CTX_IP(uc) ||
				     (long)CTX_NR(uc) != nr,
			     0)) {
		te_count(&te_stats.bad_frame);
		CTX_RET(uc) = -ENOSYS;
		goto out;
	}
	te_count(te_counter_of(a, (int)nr));
	te_count(&te_stats.traps);
	if (__builtin_expect(te_on_service_thread, 0) ||
	    __builtin_expect((uintptr_t)CTX_IP(uc) - te_quiet_lo < te_quiet_hi - te_quiet_lo, 0))
		goto service;
	if (__builtin_expect(__atomic_load_n(&te_trace_on, __ATOMIC_RELAXED), 0)) {
		struct te_call tc = {
			.nr = nr,
			.args = {CTX_A0(uc), CTX_A1(uc), CTX_A2(uc), CTX_A3(uc), CTX_A4(uc), CTX_A5(uc)},
			.ip = (uintptr_t)CTX_IP(uc),
			.tag = tag,
			.uc = uc,
		};
		uint64_t t0 = te_now();
		if (nr == SYS_exit_group || nr == SYS_exit) {
			/* No return to record: record the call first, then make sure
			 * nothing of the process is lost before it ends. */
			te_trace_record(&tc, 0, t0, t0, (uintptr_t)CTX_SP(uc), (uintptr_t)CTX_FP(uc));
			te_forget_self(); /* a vfork child: leave no ids to its parent */
			if (nr == SYS_exit_group)
				te_trace_wait_drained(200);
			CTX_RET(uc) = te_run(a, &tc);
			goto out;
		}
		long ret = te_run(a, &tc);
		uint64_t t1 = te_now();
		te_trace_record(&tc, ret, t0, t1, (uintptr_t)CTX_SP(uc), (uintptr_t)CTX_FP(uc));
		CTX_RET(uc) = ret;
		goto out;
	}
	/* The fast kinds first, straight from the registers. */
	switch (a->kind) {
	case TE_KIND_RETURN:
		CTX_RET(uc) = a->value;
		goto out;
	case TE_KIND_ERRNO:
		CTX_RET(uc) = -a->value;
		goto out;
	}
	struct te_call c = {
		.nr = nr,
		.args = {CTX_A0(uc), CTX_A1(uc), CTX_A2(uc), CTX_A3(uc), CTX_A4(uc), CTX_A5(uc)},
		.ip = (uintptr_t)CTX_IP(uc),
		.tag = tag,
		.uc = uc,
	};
	CTX_RET(uc) = te_run(a, &c);
	goto out;
service:
	/* A Go handler's own syscalls are made for real: no recursion, and the
	 * handler sees the real system. */
	te_count(&te_stats.service_calls);
	CTX_RET(uc) = te_syscall6(nr, CTX_A0(uc), CTX_A1(uc), CTX_A2(uc), CTX_A3(uc), CTX_A4(uc), CTX_A5(uc));
out:
	errno = saved_errno;
}

int te_install_handler(void) {
	struct sigaction sa;
	sigset_t unblock;
	if (te_active)
		return 0;
	pthread_atfork(0, 0, te_after_fork_child);
	/* glibc computes its arena limit (reading /sys/devices/system/cpu/online
	 * with openat, read and close) the first time the ninth malloc arena is
	 * made, which happens in the first free() of a new cgo thread, while
	 * that thread still blocks every signal: a trapped openat, read or close
	 * would then kill the process. Fix the limit now to the very value glibc
	 * would compute (8 arenas per CPU on 64-bit), so it never looks again. */
	mallopt(M_ARENA_MAX, 8 * get_nprocs());
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = te_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, &te_prev) != 0)
		return -errno;
	sigemptyset(&unblock);
	sigaddset(&unblock, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &unblock, 0);
	te_active = 1;
	return 0;
}

/* Let SIGSYS through every other handler: Go's runtime installs its
 * handlers with every signal in sa_mask, and a syscall its handler makes
 * (tgkill to re-raise a fatal signal, write for a crash report, exit_group)
 * would otherwise kill the process with SIGSYS if trapped. Returns the
 * number of handlers changed. */
int te_unmask_sigsys_in_handlers(void) {
	struct {
		unsigned long handler, flags, restorer;
		uint64_t mask;
	} sa;
	int changed = 0;
	for (int sig = 1; sig <= 64; sig++) {
		if (sig == SIGSYS || sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (te_syscall6(SYS_rt_sigaction, sig, 0, (long)&sa, 8, 0, 0) != 0)
			continue;
		if (sa.handler == (unsigned long)SIG_DFL || sa.handler == (unsigned long)SIG_IGN)
			continue;
		if (!(sa.mask & (1ull << (SIGSYS - 1))))
			continue;
		sa.mask &= ~(1ull << (SIGSYS - 1));
		if (te_syscall6(SYS_rt_sigaction, sig, (long)&sa, 0, 8, 0, 0) == 0)
			changed++;
	}
	return changed;
}

int te_restore_handler(void) {
	if (!te_active)
		return 0;
	if (sigaction(SIGSYS, &te_prev, 0) != 0)
		return -errno;
	te_active = 0;
	return 0;
}

int te_handler_active(void) {
	struct sigaction cur;
	if (sigaction(SIGSYS, 0, &cur) != 0)
		return 0;
	return (cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == te_handler;
}

/* ---- loading the filter with every other thread parked ---- */

#define TE_PARK_SIG 62 /* a real-time signal nothing here uses */
#define TE_MAXTHREADS 4096

static int te_park_release, te_parked;

static void te_park_handler(int sig, siginfo_t *si, void *vctx) {
	ucontext_t *uc = vctx;
	int saved = errno;
	(void)sig;
	(void)si;
	/* A thread that kept SIGSYS blocked (while taking other signals) gets
	 * it unblocked as it leaves: after the filter, it would die of it. */
	*(uint64_t *)(void *)&uc->uc_sigmask &= ~TE_SIGBIT(SIGSYS);
	__atomic_fetch_add(&te_parked, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&te_park_release, __ATOMIC_ACQUIRE))
		te_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
	__atomic_fetch_sub(&te_parked, 1, __ATOMIC_SEQ_CST);
	errno = saved;
}

static uint64_t te_ms(void) { return te_now() / 1000000ull; }

long te_quiesce_load(const void *fprog, unsigned long flags, int ms, int *unparked, int *first_unparked) {
	static int signaled[TE_MAXTHREADS];
	int nsig = 0;
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = te_park_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	__atomic_store_n(&te_park_release, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&te_parked, 0, __ATOMIC_SEQ_CST);
	if (sigaction(TE_PARK_SIG, &sa, &old) != 0)
		return -errno;
	long pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	long self = te_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	uint64_t deadline = te_ms() + (uint64_t)ms;
	*unparked = 0;
	*first_unparked = 0;
	for (;;) {
		/* Signal every thread not signaled yet (threads keep appearing). */
		int fresh = 0;
		long dir = te_syscall6(SYS_openat, AT_FDCWD, (long)"/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0, 0, 0);
		if (dir < 0)
			break;
		char buf[1024];
		for (;;) {
			long got = te_syscall6(SYS_getdents64, dir, (long)buf, sizeof buf, 0, 0, 0);
			if (got <= 0)
				break;
			for (long off = 0; off < got;) {
				struct {
					uint64_t ino;
					int64_t off;
					unsigned short reclen;
					unsigned char type;
					char name[];
				} *d = (void *)(buf + off);
				off += d->reclen;
				if (d->name[0] < '0' || d->name[0] > '9')
					continue;
				int tid = 0;
				for (const char *q = d->name; *q; q++)
					tid = tid * 10 + (*q - '0');
				if (tid == self)
					continue;
				int seen = 0;
				for (int i = 0; i < nsig && !seen; i++)
					seen = signaled[i] == tid;
				if (seen || nsig >= TE_MAXTHREADS)
					continue;
				if (te_syscall6(SYS_tgkill, pid, tid, TE_PARK_SIG, 0, 0, 0) == 0) {
					signaled[nsig++] = tid;
					fresh++;
				}
			}
		}
		te_syscall6(SYS_close, dir, 0, 0, 0, 0, 0);
		/* Wait for them; a thread inside a window with every signal
		 * blocked parks as soon as it leaves it. Threads that exited
		 * meanwhile are not waited for. */
		for (;;) {
			int alive = 0;
			for (int i = 0; i < nsig; i++)
				if (te_syscall6(SYS_tgkill, pid, signaled[i], 0, 0, 0, 0) == 0)
					alive++;
			if (__atomic_load_n(&te_parked, __ATOMIC_SEQ_CST) >= alive || te_ms() >= deadline)
				break;
			te_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
		}
		if (!fresh || te_ms() >= deadline)
			break;
	}
	int alive = 0, last = 0;
	for (int i = 0; i < nsig; i++)
		if (te_syscall6(SYS_tgkill, pid, signaled[i], 0, 0, 0, 0) == 0)
			alive++, last = signaled[i];
	int parked = __atomic_load_n(&te_parked, __ATOMIC_SEQ_CST);
	if (parked < alive) {
		*unparked = alive - parked; /* they block every signal */
		*first_unparked = last;
	}
	long r = te_syscall6(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, (long)flags, (long)fprog, 0, 0, 0);
	__atomic_store_n(&te_park_release, 1, __ATOMIC_SEQ_CST);
	uint64_t until = te_ms() + 1000;
	while (__atomic_load_n(&te_parked, __ATOMIC_SEQ_CST) > 0 && te_ms() < until)
		te_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
	sigaction(TE_PARK_SIG, &old, 0);
	return r;
}
