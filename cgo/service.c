/* The hand-off of trapped calls to Go service threads.
 *
 * A trapped thread that may wait for Go (its call site is outside the Go
 * binary's text and outside the vDSO: C code reached through cgo has
 * released its scheduler slot, foreign pthreads never had one) takes a
 * slot, publishes the call, wakes a service thread and waits: it spins
 * briefly, then sleeps on a futex. Every other call gets the rule's
 * fallback, answered here in C. Everything is lock-free and made of
 * syscalls through the passthrough instruction. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <time.h>

#include "trapemu.h"

#define TE_NSLOTS 64
#define TE_WAITER_SPIN 4000 /* pause loops (tens of µs) before sleeping */
#define TE_SERVICE_SPIN 10000

enum { SLOT_WAITING = 0, SLOT_ANSWERED = 1, SLOT_ASLEEP = 2 };


static struct te_slot te_slots[TE_NSLOTS];
static uint64_t te_slot_free = ~(uint64_t)0;
static uint64_t te_pending;
static uint32_t te_req_seq; /* futex word of idle service threads */
static uint32_t te_sleepers;
static uint32_t te_spinner; /* 1 while a service thread spins for work: only one does */
static int te_nservice;
static long te_service_pid;
static uintptr_t te_go_lo, te_go_hi, te_vdso_lo, te_vdso_hi;

extern __thread int te_on_service_thread __attribute__((tls_model("initial-exec")));

/* Per-thread cache of the thread's id and process id. A forked child's
 * thread inherits them, but its real tid differs: that is when the pid is
 * read again. So the common case costs one gettid. */
static __thread long te_tls_tid __attribute__((tls_model("initial-exec")));
static __thread long te_tls_pid __attribute__((tls_model("initial-exec")));

static inline void te_pause(void) {
#if defined(__x86_64__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static long te_futex(uint32_t *w, int op, uint32_t val, const struct timespec *ts) {
	return te_syscall6(SYS_futex, (long)w, op | FUTEX_PRIVATE_FLAG, val, (long)ts, 0, 0);
}

void te_set_go_ranges(uintptr_t text_lo, uintptr_t text_hi, uintptr_t vdso_lo, uintptr_t vdso_hi) {
	te_go_lo = text_lo;
	te_go_hi = text_hi;
	te_vdso_lo = vdso_lo;
	te_vdso_hi = vdso_hi;
}

static long te_fallback(const struct te_action *a, struct te_call *c) {
	__atomic_fetch_add((uint64_t *)&a->fallbacks, 1, __ATOMIC_RELAXED);
	if (!a->fallback)
		return te_pass(c);
	return te_run(a->fallback, c);
}

long te_go(const struct te_action *a, struct te_call *c) {
	uintptr_t ip = c->ip;
	/* Go code (P held, or may be) and the vDSO's syscall fallbacks never
	 * wait for Go; nor do calls when no service thread runs. */
	if ((ip >= te_go_lo && ip < te_go_hi) || (ip >= te_vdso_lo && ip < te_vdso_hi) ||
	    __atomic_load_n(&te_nservice, __ATOMIC_ACQUIRE) == 0)
		return te_fallback(a, c);
	/* Nor a forked child, whose service threads stayed in the parent. */
	long tid = te_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
	if (tid != te_tls_tid) {
		te_tls_tid = tid;
		te_tls_pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	}
	if (te_tls_pid != te_service_pid)
		return te_fallback(a, c);

	int i;
	for (;;) {
		uint64_t f = __atomic_load_n(&te_slot_free, __ATOMIC_ACQUIRE);
		if (f == 0) {
			te_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
			continue;
		}
		i = __builtin_ctzll(f);
		if (__atomic_compare_exchange_n(&te_slot_free, &f, f & ~(1ull << i), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
	}
	struct te_slot *s = &te_slots[i];
	s->nr = c->nr;
	for (int k = 0; k < 6; k++)
		s->args[k] = c->args[k];
	s->ip = ip;
	s->tag = c->tag;
	s->handler = a->value;
	s->tid = (int)tid;
	__atomic_store_n(&s->state, SLOT_WAITING, __ATOMIC_RELAXED);
	__atomic_fetch_or(&te_pending, 1ull << i, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&te_req_seq, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&te_spinner, __ATOMIC_SEQ_CST) == 0 && __atomic_load_n(&te_sleepers, __ATOMIC_SEQ_CST) > 0)
		te_futex(&te_req_seq, FUTEX_WAKE, 1, 0);

	for (int spin = 0; __atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != SLOT_ANSWERED; spin++) {
		if (spin < TE_WAITER_SPIN) {
			te_pause();
			continue;
		}
		uint32_t expect = SLOT_WAITING;
		if (__atomic_compare_exchange_n(&s->state, &expect, SLOT_ASLEEP, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
		    expect == SLOT_ASLEEP)
			te_futex(&s->state, FUTEX_WAIT, SLOT_ASLEEP, 0);
	}
	int kind = s->kind;
	long value = s->value;
	if (kind == 1)
		for (int k = 0; k < 6; k++)
			c->args[k] = s->out_args[k];
	__atomic_fetch_or(&te_slot_free, 1ull << i, __ATOMIC_RELEASE);
	__atomic_fetch_add((uint64_t *)&a->go_calls, 1, __ATOMIC_RELAXED);
	switch (kind) {
	case 0:
		return value;
	case 1:
		return te_pass(c);
	}
	return te_fallback(a, c);
}

void te_service_enter(void) {
	te_on_service_thread = 1;
	te_service_pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	__atomic_fetch_add(&te_nservice, 1, __ATOMIC_RELEASE);
}

int te_service_running(void) { return __atomic_load_n(&te_nservice, __ATOMIC_ACQUIRE); }

void te_service_state(uint64_t *out) {
	out[0] = __atomic_load_n(&te_pending, __ATOMIC_SEQ_CST);
	out[1] = ~__atomic_load_n(&te_slot_free, __ATOMIC_SEQ_CST);
	out[2] = __atomic_load_n(&te_sleepers, __ATOMIC_SEQ_CST);
	out[3] = __atomic_load_n(&te_spinner, __ATOMIC_SEQ_CST);
	out[4] = (uint64_t)__atomic_load_n(&te_nservice, __ATOMIC_SEQ_CST);
}

/* Take a pending request, or -1. Producers don't wake anyone while a
 * thread spins, so several requests can queue up behind one wake-up: a
 * taker that leaves requests behind, with no spinner to see them, wakes
 * the next sleeper, which does the same. */
static int te_take(void) {
	uint64_t p = __atomic_load_n(&te_pending, __ATOMIC_ACQUIRE);
	while (p) {
		int i = __builtin_ctzll(p);
		uint64_t rest = p & ~(1ull << i);
		if (__atomic_compare_exchange_n(&te_pending, &p, rest, 0, __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE)) {
			if (rest != 0 && __atomic_load_n(&te_spinner, __ATOMIC_SEQ_CST) == 0 &&
			    __atomic_load_n(&te_sleepers, __ATOMIC_SEQ_CST) > 0)
				te_futex(&te_req_seq, FUTEX_WAKE, 1, 0);
			return i;
		}
	}
	return -1;
}

/* Wait for a request. At most one service thread spins (on a machine with
 * few CPUs more spinners would crowd out the very threads they serve); the
 * others sleep on a futex and are woken when no one spins. */
int te_service_next(void) {
	for (;;) {
		int i = te_take();
		if (i >= 0)
			return i;
		uint32_t idle = 0;
		if (__atomic_compare_exchange_n(&te_spinner, &idle, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			for (int spin = 0; spin < TE_SERVICE_SPIN; spin++) {
				if (__atomic_load_n(&te_pending, __ATOMIC_ACQUIRE) != 0)
					break;
				te_pause();
			}
			__atomic_store_n(&te_spinner, 0, __ATOMIC_SEQ_CST);
			i = te_take();
			if (i >= 0)
				return i;
		}
		uint32_t seq = __atomic_load_n(&te_req_seq, __ATOMIC_SEQ_CST);
		__atomic_fetch_add(&te_sleepers, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&te_pending, __ATOMIC_SEQ_CST) == 0)
			te_futex(&te_req_seq, FUTEX_WAIT, seq, 0);
		__atomic_fetch_sub(&te_sleepers, 1, __ATOMIC_SEQ_CST);
	}
}

int te_service_done_next(int slot, int kind, long value, const long *args) {
	if (slot >= 0)
		te_service_done(slot, kind, value, args);
	return te_service_next();
}

struct te_slot *te_service_slot(int slot) { return &te_slots[slot]; }


void te_service_done(int slot, int kind, long value, const long *args) {
	struct te_slot *s = &te_slots[slot];
	s->kind = kind;
	s->value = value;
	if (kind == 1)
		for (int k = 0; k < 6; k++)
			s->out_args[k] = args[k];
	if (__atomic_exchange_n(&s->state, SLOT_ANSWERED, __ATOMIC_ACQ_REL) == SLOT_ASLEEP)
		te_futex(&s->state, FUTEX_WAKE, 1, 0);
}
