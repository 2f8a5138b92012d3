/* trapemu C core: the SIGSYS handler, its action table, the passthrough
 * syscall instruction and the hand-off to Go service threads. Everything
 * reachable from te_handler is async-signal-safe: no allocation, no locks,
 * no stdio, no lazily allocated TLS, errno saved and restored, small stack
 * frames (buffers come from a static pool). */
#ifndef TRAPEMU_H
#define TRAPEMU_H

#include <signal.h>
#include <stdint.h>

/* Action kinds; the Go side mirrors these values (see kinds.go). */
enum {
	TE_KIND_RETURN = 1,      /* return value */
	TE_KIND_ERRNO = 2,       /* return -value */
	TE_KIND_PASSTHROUGH = 3, /* re-issue through te_syscall6 */
	TE_KIND_COPYOUT = 4,     /* write outs[] to the caller's buffers, return value */
	TE_KIND_GO = 5,          /* hand to a Go service thread, or run fallback */
	TE_KIND_REDIRECT = 6,    /* rewrite path prefix from (data) to to (data2) */
	TE_KIND_VFILE = 7,       /* open of path (data) yields a memfd holding data2 */
	TE_KIND_READONLY = 8,    /* writes under prefix (data) fail with EROFS */
	TE_KIND_GROUPS = 9,      /* getgroups(2) answering the gid_t list in data */
	TE_KIND_KILL = 10,       /* kill the process with SIGSYS, as RET_KILL_PROCESS */
	TE_KIND_EXEC = 11,       /* execve through the spawner, then become the proxy */
	TE_KIND_SIGMASK = 12,    /* rt_sigprocmask on the caller's saved mask, never blocking SIGSYS */
	TE_KIND_SIGACTION = 13,  /* rt_sigaction with SIGSYS taken out of sa_mask */
};

#define TE_MAX_OUTS 3
#define TE_MAXNR 1024

/* One hit counter: trapped calls of syscall nr answered by an action. */
struct te_counter {
	int32_t nr;
	uint32_t pad;
	uint64_t hits;
};

struct te_out {
	uint32_t arg;     /* the argument holding the caller's buffer */
	uint32_t len;     /* bytes to write */
	const char *data; /* what to write */
};

/* One tag's action. Immutable once published (only counters change). */
struct te_action {
	uint32_t kind;
	uint32_t ncounters;
	int64_t value;
	struct te_counter *counters; /* sorted by nr */
	uint64_t other_hits;         /* syscall not among counters */
	uint64_t fallbacks;          /* GO: calls answered by the fallback */
	uint64_t go_calls;           /* GO: calls answered by the Go handler */
	const char *data, *data2;    /* kind-specific strings */
	uint32_t len, len2;
	uint32_t nouts;
	struct te_out outs[TE_MAX_OUTS];
	struct te_action *next;      /* chain: tried when this one declines */
	struct te_action *fallback;  /* GO: answered in C where Go can't run */
};

/* Process-wide figures of the handler. */
struct te_global_stats {
	uint64_t traps;       /* seccomp traps answered by an action */
	uint64_t not_traps;   /* SIGSYS not sent by seccomp (kill, tgkill): ignored */
	uint64_t unknown_tag; /* seccomp traps with a tag no policy owns: -ENOSYS */
	uint64_t bad_frame;   /* siginfo and ucontext disagree: -ENOSYS */
	uint64_t service_calls; /* syscalls of service threads, passed through */
};

extern struct te_global_stats te_stats;

/* Which arguments of syscall nr are paths, and how it writes. */
struct te_pathinfo {
	int8_t path[2];  /* argument index of a path, or -1 */
	int8_t dirfd[2]; /* the dirfd argument it is relative to, or -1 */
	int8_t flags;    /* open flags argument, -2 for openat2's struct, -1 none */
	uint8_t writes;  /* bit i: path i is written (ReadOnly refuses) */
};

void te_set_pathinfo(int nr, int p0, int d0, int p1, int d1, int flags, int writes);

int te_install_handler(void);
int te_restore_handler(void);
/* Load a filter with every other thread parked in a signal handler (so no
 * thread is inside a window with SIGSYS blocked when the filter lands, and
 * none keeps SIGSYS blocked). Returns seccomp's result; *unparked counts
 * threads that did not park within ms (they block every signal). */
long te_quiesce_load(const void *fprog, unsigned long flags, int ms, int *unparked, int *first_unparked);
int te_unmask_sigsys_in_handlers(void);
int te_handler_active(void);
void te_publish(unsigned tag, struct te_action *a);
uintptr_t te_escape_ip(void);
long te_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5);
uint64_t te_load(const uint64_t *p);
void te_handler(int sig, siginfo_t *si, void *ctx);

/* --- internal: shared by handler.c, paths.c, service.c --- */

#define TE_DECLINE ((long)INT64_MIN) /* an action that does not apply */

/* A trapped call as the handler sees it (args may be rewritten). */
struct te_call {
	long nr;
	long args[6];
	uintptr_t ip;
	unsigned tag;
	void *uc; /* the ucontext_t of the trap */
};

long te_pass(const struct te_call *c);
long te_run(const struct te_action *a, struct te_call *c);
long te_copy_out(uintptr_t dst, const void *src, unsigned long len);
long te_copy_in(void *dst, uintptr_t src, unsigned long len);
long te_read_cstr(char *dst, unsigned long room, uintptr_t src, long toolong);
void te_after_fork_child(void);
void te_forget_self(void);
long te_redirect(const struct te_action *a, struct te_call *c);
long te_vfile(const struct te_action *a, struct te_call *c);
long te_readonly(const struct te_action *a, struct te_call *c);
long te_go(const struct te_action *a, struct te_call *c);
long te_exec(const struct te_action *a, struct te_call *c);

/* Start the spawner (fork twice, before the filter); proxy_fd holds the
 * proxy image. Returns 0 or -errno. */
int te_spawner_start(int proxy_fd);
int te_exec_ready(void);

/* --- tracing --- */

#define TE_TRACE_FRAMES 8
#define TE_TRACE_STR 256

/* One traced call. seq is the commit mark: the ring position plus one,
 * written last. */
struct te_trace_rec {
	uint64_t seq;
	uint64_t t_start, t_end; /* CLOCK_MONOTONIC ns around the answer */
	int64_t ret;
	uint64_t args[6];
	uint64_t ip;
	uint64_t frames[TE_TRACE_FRAMES]; /* return addresses above the call site */
	int32_t nr;
	int32_t tid;
	uint32_t tag;
	uint32_t nframes;
	uint32_t nstr;              /* strings captured (paths), NUL-separated in str */
	int32_t pid;                /* set where the record leaves the process */
	char str[TE_TRACE_STR];
};

/* Start recording every trapped call into a ring of size (a power of two)
 * records allocated by the caller; frames: how many return addresses to
 * capture (0..TE_TRACE_FRAMES). */
void te_trace_start(struct te_trace_rec *ring, uint64_t size, int frames);
/* Stop recording. */
void te_trace_stop(void);
/* Copy up to max committed records into out; returns how many. */
int te_trace_drain(struct te_trace_rec *out, int max);
/* Records dropped because the ring was full. */
uint64_t te_trace_dropped(void);
/* Fill a record for the call c answered with ret between t0 and t1. */
void te_trace_record(const struct te_call *c, long ret, uint64_t t0, uint64_t t1, uintptr_t sp, uintptr_t fp);
uint64_t te_now(void);
extern int te_trace_on;
/* Records of other processes (forked children, whose drainer stayed in the
 * parent) are sent, one message each, on fd (a SOCK_SEQPACKET socket); the
 * owner process's go through the ring. -1: no such fd. */
void te_trace_set_sink(int fd, int owner_pid);
/* Wait (up to ms) until the ring is drained: before the process exits. */
void te_trace_wait_drained(int ms);
/* The drainer has handled n more records (sent, written). */
void te_trace_ack(uint64_t n);
/* Mark the calling thread quiet: its syscalls are made for real, not
 * answered by actions nor traced (the tracer's own thread). */
void te_mark_quiet(void);
/* Calls from [lo, hi) are made for real and not traced. */
void te_set_quiet_range(uintptr_t lo, uintptr_t hi);

/* --- Go service threads --- */

/* Where Go code runs: calls from these ranges hold (or may hold) a Go
 * scheduler slot and never wait for a Go handler. */
void te_set_go_ranges(uintptr_t text_lo, uintptr_t text_hi, uintptr_t vdso_lo, uintptr_t vdso_hi);
/* Called once by each Go service thread, from its locked OS thread. */
void te_service_enter(void);
/* Wait for a request; returns its slot. */
int te_service_next(void);
/* Answer slot. kind: 0 return value, 1 passthrough with args, 2 fallback. */
void te_service_done(int slot, int kind, long value, const long *args);
/* Answer slot (if >= 0), then wait for the next request: one C call per
 * request on the service thread's loop. */
int te_service_done_next(int slot, int kind, long value, const long *args);

/* One hand-off slot: a trapped call waiting for a Go handler, and its
 * answer. The request fields are read by Go directly. */
struct te_slot {
	/* the request */
	long nr;
	long args[6];
	uintptr_t ip;
	unsigned tag;
	int tid;
	long handler; /* the Go handler's id (the action's value) */
	/* the answer */
	int kind;
	long value;
	long out_args[6];
	uint32_t state; /* futex word */
} __attribute__((aligned(64)));
struct te_slot *te_service_slot(int slot);

/* Count of service threads accepting work. */
int te_service_running(void);
/* pending, busy slots, sleepers, spinner, service threads */
void te_service_state(uint64_t *out);

#endif
