/* trapemu C core: the SIGSYS handler, its action table and the passthrough
 * syscall instruction. Everything reachable from te_handler is
 * async-signal-safe: no allocation, no locks, no stdio, no lazily allocated
 * TLS, errno saved and restored, a small stack frame. */
#ifndef TRAPEMU_H
#define TRAPEMU_H

#include <stdint.h>
#include <signal.h>

/* Action kinds; the Go side mirrors these values (see kinds.go). */
enum {
	TE_KIND_RETURN = 1,      /* return value */
	TE_KIND_ERRNO = 2,       /* return -value */
	TE_KIND_PASSTHROUGH = 3, /* re-issue through te_syscall6 */
	TE_KIND_COPYOUT = 4,     /* write data to the buffer at argument arg, return value */
};

/* One hit counter: trapped calls of syscall nr answered by an action. */
struct te_counter {
	int32_t nr;
	uint32_t pad;
	uint64_t hits;
};

/* One tag's action. Immutable once published (only hits change). */
struct te_action {
	uint32_t kind;
	uint32_t ncounters;
	int64_t value;
	struct te_counter *counters; /* sorted by nr */
	uint64_t other_hits;         /* syscall not among counters */
	const char *data;            /* COPYOUT: bytes to write */
	uint32_t len;                /* COPYOUT: their length */
	uint32_t arg;                /* COPYOUT: the argument holding the buffer */
};

/* Process-wide figures of the handler. */
struct te_global_stats {
	uint64_t traps;       /* seccomp traps answered by an action */
	uint64_t not_traps;   /* SIGSYS not sent by seccomp (kill, tgkill): ignored */
	uint64_t unknown_tag; /* seccomp traps with a tag no policy owns: -ENOSYS */
	uint64_t bad_frame;   /* siginfo and ucontext disagree: -ENOSYS */
};

extern struct te_global_stats te_stats;

/* Install te_handler for SIGSYS (SA_SIGINFO|SA_ONSTACK, every signal
 * blocked while it runs) and unblock SIGSYS on the calling thread. Keeps
 * the previous disposition for te_restore_handler. Returns 0 or -errno. */
int te_install_handler(void);
/* Put back the disposition te_install_handler replaced. */
int te_restore_handler(void);
/* Whether SIGSYS is currently handled by te_handler. */
int te_handler_active(void);

/* Publish or withdraw the action of a tag (1..65535). */
void te_publish(unsigned tag, struct te_action *a);

/* The return address of the passthrough syscall instruction: the filter
 * lets trapped syscalls made from there through. */
uintptr_t te_escape_ip(void);

/* Issue syscall nr through the passthrough instruction; returns the raw
 * result (-errno on failure). */
long te_syscall6(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

/* Atomic read of a counter. */
uint64_t te_load(const uint64_t *p);

void te_handler(int sig, siginfo_t *si, void *ctx);

#endif
