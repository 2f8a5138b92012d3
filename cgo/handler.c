#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <sys/sysinfo.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
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
#else
#error "trapemu supports amd64 and arm64"
#endif

#define TE_NTAGS 65536

struct te_global_stats te_stats;

static struct te_action *te_actions[TE_NTAGS];
static struct sigaction te_prev;
static int te_active;

extern char te_escape[]; /* defined next to the syscall instruction */

uintptr_t te_escape_ip(void) { return (uintptr_t)te_escape; }

uint64_t te_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }

static inline void te_count(uint64_t *p) { __atomic_fetch_add(p, 1, __ATOMIC_RELAXED); }

void te_publish(unsigned tag, struct te_action *a) {
	if (tag > 0 && tag < TE_NTAGS)
		__atomic_store_n(&te_actions[tag], a, __ATOMIC_RELEASE);
}

/* Write len bytes to the caller's address dst as the kernel's copy_to_user
 * would: a bad address fails with -EFAULT instead of crashing the handler.
 * process_vm_writev on our own pid needs no ptrace permission. */
static long te_copy_out(uintptr_t dst, const void *src, size_t len) {
	struct iovec local = {(void *)src, len};
	struct iovec remote = {(void *)dst, len};
	long pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	long n = te_syscall6(SYS_process_vm_writev, pid, (long)&local, 1, (long)&remote, 1, 0);
	if (n == (long)len)
		return 0;
	return n < 0 && n != -EFAULT ? n : -EFAULT;
}

/* Argument i of the trapped call. */
static inline long te_arg(const ucontext_t *uc, unsigned i) {
	switch (i) {
	case 0: return CTX_A0(uc);
	case 1: return CTX_A1(uc);
	case 2: return CTX_A2(uc);
	case 3: return CTX_A3(uc);
	case 4: return CTX_A4(uc);
	default: return CTX_A5(uc);
	}
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
	switch (a->kind) {
	case TE_KIND_RETURN:
		CTX_RET(uc) = a->value;
		break;
	case TE_KIND_ERRNO:
		CTX_RET(uc) = -a->value;
		break;
	case TE_KIND_PASSTHROUGH:
		CTX_RET(uc) = te_syscall6(nr, CTX_A0(uc), CTX_A1(uc), CTX_A2(uc), CTX_A3(uc), CTX_A4(uc), CTX_A5(uc));
		break;
	case TE_KIND_COPYOUT: {
		long r = te_copy_out((uintptr_t)te_arg(uc, a->arg), a->data, a->len);
		CTX_RET(uc) = r == 0 ? a->value : r;
		break;
	}
	default:
		CTX_RET(uc) = -ENOSYS;
		break;
	}
	te_count(&te_stats.traps);
out:
	errno = saved_errno;
}

int te_install_handler(void) {
	struct sigaction sa;
	sigset_t unblock;
	if (te_active)
		return 0;
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
