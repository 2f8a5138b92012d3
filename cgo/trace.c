/* The trace ring: the SIGSYS handler writes one record per trapped call
 * (no syscall but gettid, no wait, no allocation); a Go goroutine drains
 * it. When the ring is full the record is dropped and counted. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <pthread.h>
#include <sys/socket.h>

#include "trapemu.h"

int te_trace_on;
static struct te_trace_rec *te_ring;
static uint64_t te_ring_mask;
static int te_ring_frames;
static uint64_t te_ring_head __attribute__((aligned(64))); /* next position to claim */
static uint64_t te_ring_tail __attribute__((aligned(64))); /* next position to drain */
static uint64_t te_ring_dropped __attribute__((aligned(64)));
static uint64_t te_ring_acked __attribute__((aligned(64))); /* records fully handled by the drainer */
static int te_sink_fd = -1;
static int te_owner_pid;
static __thread long te_rec_tid __attribute__((tls_model("initial-exec")));
static __thread long te_rec_pid __attribute__((tls_model("initial-exec")));
static __thread unsigned te_rec_gen __attribute__((tls_model("initial-exec")));
/* Bumped in a fork()ed child (pthread_atfork, registered at install): the
 * thread's cached tid and pid are then stale. */
static unsigned te_fork_gen = 1;

void te_after_fork_child(void) { te_fork_gen++; }

/* This thread's id and its process's, cached per thread (see te_fork_gen). */
static inline void te_self(void) {
	if (__builtin_expect(te_rec_gen != te_fork_gen, 0)) {
		te_rec_gen = te_fork_gen;
		te_rec_tid = te_syscall6(SYS_gettid, 0, 0, 0, 0, 0, 0);
		te_rec_pid = te_syscall6(SYS_getpid, 0, 0, 0, 0, 0, 0);
	}
}

/* Forget this thread's cached ids. A vfork child runs on its parent
 * thread's TLS: before it becomes another program (exec) or ends, it must
 * not leave its own ids there for the parent. */
void te_forget_self(void) { te_rec_gen = 0; }
extern __thread int te_on_service_thread __attribute__((tls_model("initial-exec")));

void te_trace_set_sink(int fd, int owner_pid) {
	te_owner_pid = owner_pid;
	__atomic_store_n(&te_sink_fd, fd, __ATOMIC_RELEASE);
}

void te_mark_quiet(void) { te_on_service_thread = 1; }

void te_trace_ack(uint64_t n) { __atomic_fetch_add(&te_ring_acked, n, __ATOMIC_RELEASE); }

void te_trace_wait_drained(int ms) {
	uint64_t until = te_now() + (uint64_t)ms * 1000000ull;
	uint64_t head = __atomic_load_n(&te_ring_head, __ATOMIC_ACQUIRE);
	while (__atomic_load_n(&te_ring_acked, __ATOMIC_ACQUIRE) < head && te_now() < until)
		te_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
}

uint64_t te_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO; async-signal-safe */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void te_trace_start(struct te_trace_rec *ring, uint64_t size, int frames) {
	te_ring = ring;
	te_ring_mask = size - 1;
	te_ring_frames = frames < 0 ? 0 : frames > TE_TRACE_FRAMES ? TE_TRACE_FRAMES : frames;
	__atomic_store_n(&te_trace_on, 1, __ATOMIC_RELEASE);
}

void te_trace_stop(void) { __atomic_store_n(&te_trace_on, 0, __ATOMIC_RELEASE); }

uint64_t te_trace_dropped(void) { return __atomic_load_n(&te_ring_dropped, __ATOMIC_RELAXED); }

/* Walk the frame-pointer chain in one safe copy of the caller's stack. */
static uint32_t te_frames(uint64_t *out, int max, uintptr_t sp, uintptr_t fp) {
	enum { WINDOW = 4096 };
	static __thread uint64_t stack[WINDOW / 8] __attribute__((tls_model("initial-exec")));
	if (max <= 0 || fp < sp || fp - sp >= WINDOW)
		return 0;
	long got = te_copy_in(stack, sp, WINDOW - (sp & 7));
	if (got <= 0)
		return 0;
	uint32_t n = 0;
	while ((int)n < max) {
		uintptr_t off = fp - sp;
		if (fp < sp || off + 16 > (uintptr_t)got || (off & 7))
			break;
		uint64_t next = stack[off / 8], ret = stack[off / 8 + 1];
		if (ret == 0)
			break;
		out[n++] = ret;
		if (next <= fp)
			break;
		fp = next;
	}
	return n;
}

/* The paths of the call, for the trace to show what they were then. */
static uint32_t te_capture_paths(const struct te_call *c, char *out) {
	extern long te_trace_path_args(long nr, int *p0, int *p1);
	int p[2] = {-1, -1};
	if (!te_trace_path_args(c->nr, &p[0], &p[1]))
		return 0;
	uint32_t used = 0, n = 0;
	for (int i = 0; i < 2 && p[i] >= 0; i++) {
		uintptr_t src = (uintptr_t)c->args[p[i]];
		uint32_t room = TE_TRACE_STR - used - 1;
		if (room < 2 || src == 0)
			break;
		/* Up to the page end first, so a string before an unmapped page is
		 * read; then the rest. */
		uint32_t page_left = 4096 - (src & 4095), want = room < page_left ? room : page_left;
		long got = te_copy_in(out + used, src, want);
		if (got < 0)
			break;
		if ((uint32_t)got == want && want < room && !memchr(out + used, 0, (size_t)got)) {
			long more = te_copy_in(out + used + got, src + got, room - want);
			if (more > 0)
				got += more;
		}
		char *end = memchr(out + used, 0, (size_t)got);
		uint32_t len = end ? (uint32_t)(end - (out + used)) : (uint32_t)got;
		out[used + len] = 0;
		used += len + 1;
		n++;
	}
	return n;
}

/* Fill everything of r but its commit mark. */
static void te_fill(struct te_trace_rec *r, const struct te_call *c, long ret, uint64_t t0, uint64_t t1, uintptr_t sp,
		    uintptr_t fp) {
	r->t_start = t0;
	r->t_end = t1;
	r->ret = ret;
	for (int i = 0; i < 6; i++)
		r->args[i] = (uint64_t)c->args[i];
	r->ip = c->ip;
	r->nr = (int32_t)c->nr;
	r->tid = (int32_t)te_rec_tid;
	r->pid = (int32_t)te_rec_pid;
	r->tag = c->tag;
	r->nframes = te_frames(r->frames, te_ring_frames, sp, fp);
	r->nstr = te_capture_paths(c, r->str);
}

void te_trace_record(const struct te_call *c, long ret, uint64_t t0, uint64_t t1, uintptr_t sp, uintptr_t fp) {
	struct te_trace_rec *ring = te_ring;
	if (!ring)
		return;
	/* Which thread and process? Cached per thread, read again in a new
	 * thread or after fork() (pthread_atfork). A child made by a raw clone
	 * without CLONE_VM and without fork()'s handlers would keep the
	 * parent's: those are not traced apart (see the README). */
	te_self();
	int sink = __atomic_load_n(&te_sink_fd, __ATOMIC_ACQUIRE);
	if (sink >= 0 && te_rec_pid != te_owner_pid) {
		/* A child whose drainer stayed behind: send this record now. */
		struct te_trace_rec one;
		one.seq = 0;
		te_fill(&one, c, ret, t0, t1, sp, fp);
		te_syscall6(SYS_sendto, sink, (long)&one, sizeof one, MSG_NOSIGNAL, 0, 0);
		return;
	}
	uint64_t pos = __atomic_load_n(&te_ring_head, __ATOMIC_RELAXED);
	for (;;) {
		uint64_t tail = __atomic_load_n(&te_ring_tail, __ATOMIC_ACQUIRE);
		if (pos - tail > te_ring_mask) {
			__atomic_fetch_add(&te_ring_dropped, 1, __ATOMIC_RELAXED);
			return;
		}
		if (__atomic_compare_exchange_n(&te_ring_head, &pos, pos + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
			break;
	}
	struct te_trace_rec *r = &ring[pos & te_ring_mask];
	te_fill(r, c, ret, t0, t1, sp, fp);
	__atomic_store_n(&r->seq, pos + 1, __ATOMIC_RELEASE);
}

int te_trace_drain(struct te_trace_rec *out, int max) {
	struct te_trace_rec *ring = te_ring;
	if (!ring)
		return 0;
	uint64_t tail = __atomic_load_n(&te_ring_tail, __ATOMIC_RELAXED);
	int n = 0;
	while (n < max) {
		struct te_trace_rec *r = &ring[tail & te_ring_mask];
		if (__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE) != tail + 1)
			break; /* not written yet (or not claimed) */
		memcpy(&out[n], r, sizeof *r);
		n++;
		tail++;
		__atomic_store_n(&te_ring_tail, tail, __ATOMIC_RELEASE);
	}
	return n;
}
