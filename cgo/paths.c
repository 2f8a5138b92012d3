/* Path actions: RedirectPath, VirtualFile, ReadOnly. They read the
 * caller's path strings with process_vm_readv (a bad pointer is EFAULT),
 * into buffers from a static pool (no allocation, small frames). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "trapemu.h"

#define TE_PATH_MAX 4096
#define TE_NSETS 16 /* each action takes one set of four buffers at once */

static struct te_pathinfo te_paths[TE_MAXNR];
static int te_paths_init;

struct te_bufset {
	char b[4][TE_PATH_MAX];
};
static struct te_bufset te_sets[TE_NSETS];
static uint32_t te_sets_free = (1u << TE_NSETS) - 1;

void te_set_pathinfo(int nr, int p0, int d0, int p1, int d1, int flags, int writes) {
	if (!te_paths_init) {
		for (int i = 0; i < TE_MAXNR; i++) {
			te_paths[i].path[0] = te_paths[i].path[1] = -1;
			te_paths[i].dirfd[0] = te_paths[i].dirfd[1] = -1;
			te_paths[i].flags = -1;
		}
		te_paths_init = 1;
	}
	if (nr < 0 || nr >= TE_MAXNR)
		return;
	struct te_pathinfo *p = &te_paths[nr];
	p->path[0] = p0;
	p->dirfd[0] = d0;
	p->path[1] = p1;
	p->dirfd[1] = d1;
	p->flags = flags;
	p->writes = writes;
}

static const struct te_pathinfo *te_pathinfo_of(long nr) {
	if (!te_paths_init || nr < 0 || nr >= TE_MAXNR || te_paths[nr].path[0] < 0)
		return 0;
	return &te_paths[nr];
}

/* Take a set of buffers from the pool; yields while all are in use (one
 * set per action, taken at once, so takers never wait on each other). */
static struct te_bufset *te_set_get(void) {
	for (;;) {
		uint32_t f = __atomic_load_n(&te_sets_free, __ATOMIC_ACQUIRE);
		if (f == 0) {
			te_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
			continue;
		}
		int i = __builtin_ctz(f);
		if (__atomic_compare_exchange_n(&te_sets_free, &f, f & ~(1u << i), 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return &te_sets[i];
	}
}

static void te_set_put(struct te_bufset *b) {
	int i = (int)(b - te_sets);
	__atomic_fetch_or(&te_sets_free, 1u << i, __ATOMIC_RELEASE);
}

/* Read the caller's NUL-terminated string at src into dst (room bytes).
 * Returns its length, -EFAULT, or toolong when it does not fit. Reads page
 * by page, so a string that ends just before an unmapped page is read
 * whole. */
long te_read_cstr(char *dst, unsigned long room, uintptr_t src, long toolong) {
	unsigned long got = 0;
	if (src == 0)
		return -EFAULT;
	while (got < room) {
		unsigned long page_left = 4096 - ((src + got) & 4095);
		unsigned long want = room - got < page_left ? room - got : page_left;
		long n = te_copy_in(dst + got, src + got, want);
		if (n < 0)
			return -EFAULT;
		char *z = memchr(dst + got, 0, (size_t)n);
		if (z)
			return (long)(z - dst);
		got += (unsigned long)n;
	}
	return toolong;
}

static long te_read_str(char *buf, uintptr_t src) { return te_read_cstr(buf, TE_PATH_MAX, src, -ENAMETOOLONG); }

static unsigned long te_strlen(const char *s) {
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

/* Format "/proc/self/fd/<fd>" into out. */
static void te_fd_path(char *out, long fd) {
	static const char pre[] = "/proc/self/fd/";
	char digits[24];
	int n = 0;
	memcpy(out, pre, sizeof pre - 1);
	unsigned long v = (unsigned long)fd;
	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (int i = 0; i < n; i++)
		out[sizeof pre - 1 + i] = digits[n - 1 - i];
	out[sizeof pre - 1 + n] = 0;
}

/* Normalize an absolute path in place: collapse //, drop ., resolve ..
 * lexically (symlinks are not followed). */
static void te_clean(char *p) {
	char *w = p;
	const char *r = p;
	while (*r) {
		while (*r == '/')
			r++;
		if (!*r)
			break;
		const char *seg = r;
		while (*r && *r != '/')
			r++;
		unsigned long len = (unsigned long)(r - seg);
		if (len == 1 && seg[0] == '.')
			continue;
		if (len == 2 && seg[0] == '.' && seg[1] == '.') {
			while (w > p && *--w != '/')
				;
			continue;
		}
		*w++ = '/';
		memmove(w, seg, len);
		w += len;
	}
	if (w == p)
		*w++ = '/';
	*w = 0;
}

/* Make path (relative to dirfd) absolute into out. Returns 0 or -errno;
 * -ENOENT-like failures to learn the base decline (return 1). */
static long te_absolute(char *out, const char *path, long dirfd) {
	unsigned long plen = te_strlen(path);
	if (path[0] == '/') {
		memcpy(out, path, plen + 1);
		te_clean(out);
		return 0;
	}
	long n;
	if (dirfd == AT_FDCWD || dirfd == -1) {
		n = te_syscall6(SYS_getcwd, (long)out, TE_PATH_MAX, 0, 0, 0, 0);
		if (n < 0)
			return 1;
		n = (long)te_strlen(out);
	} else {
		char link[40];
		te_fd_path(link, dirfd);
		n = te_syscall6(SYS_readlinkat, AT_FDCWD, (long)link, (long)out, TE_PATH_MAX - 1, 0, 0);
		if (n <= 0 || out[0] != '/')
			return 1;
		out[n] = 0;
	}
	if ((unsigned long)n + 1 + plen + 1 > TE_PATH_MAX)
		return -ENAMETOOLONG;
	out[n] = '/';
	memcpy(out + n + 1, path, plen + 1);
	te_clean(out);
	return 0;
}

/* Whether path is prefix itself or below it. prefix is clean, without a
 * trailing slash, or "/". */
static int te_under(const char *path, const char *prefix, unsigned long plen) {
	if (plen == 1 && prefix[0] == '/')
		return path[0] == '/';
	if (strncmp(path, prefix, plen) != 0)
		return 0;
	return path[plen] == 0 || path[plen] == '/';
}

/* Read path argument i of the call and make it absolute in abs. Returns 0,
 * 1 (not a usable path: decline) or -errno. */
static long te_path_arg(const struct te_pathinfo *pi, int i, const struct te_call *c, char *raw, char *abs) {
	long n = te_read_str(raw, (uintptr_t)c->args[(int)pi->path[i]]);
	if (n < 0)
		return n;
	if (n == 0)
		return 1; /* "" (AT_EMPTY_PATH): the fd itself */
	long dirfd = pi->dirfd[i] >= 0 ? (long)(int)c->args[(int)pi->dirfd[i]] : AT_FDCWD;
	return te_absolute(abs, raw, dirfd);
}

long te_redirect(const struct te_action *a, struct te_call *c) {
	const struct te_pathinfo *pi = te_pathinfo_of(c->nr);
	if (!pi)
		return TE_DECLINE;
	struct te_bufset *set = te_set_get();
	char *raw = set->b[0], *abs = set->b[1];
	long ret = TE_DECLINE;
	int changed = 0;
	for (int i = 0; i < 2 && pi->path[i] >= 0; i++) {
		long r = te_path_arg(pi, i, c, raw, abs);
		if (r < 0) {
			ret = r;
			goto done;
		}
		if (r > 0 || !te_under(abs, a->data, a->len))
			continue;
		unsigned long rest = te_strlen(abs + a->len);
		if (a->len2 + rest + 1 > TE_PATH_MAX) {
			ret = -ENAMETOOLONG;
			goto done;
		}
		char *out = set->b[2 + i];
		memcpy(out, a->data2, a->len2);
		memcpy(out + a->len2, abs + a->len, rest + 1);
		if (out[0] == 0) {
			out[0] = '/';
			out[1] = 0;
		}
		c->args[(int)pi->path[i]] = (long)out;
		changed = 1;
	}
	if (changed)
		ret = te_pass(c);
done:
	te_set_put(set);
	return ret;
}

/* Open flags of the call (openat2: read from its struct open_how). */
static long te_open_flags(const struct te_pathinfo *pi, const struct te_call *c, uint64_t *flags) {
	if (pi->flags == -2) {
		uint64_t f;
		if (te_copy_in(&f, (uintptr_t)c->args[2], sizeof f) != (long)sizeof f)
			return -EFAULT;
		*flags = f;
		return 0;
	}
	*flags = pi->flags >= 0 ? (uint64_t)c->args[(int)pi->flags] : 0;
	return 0;
}

static int te_open_writes(uint64_t flags) {
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC | O_APPEND)) != 0;
}

long te_readonly(const struct te_action *a, struct te_call *c) {
	const struct te_pathinfo *pi = te_pathinfo_of(c->nr);
	if (!pi)
		return TE_DECLINE;
	int writes = pi->writes;
	if (pi->flags != -1) {
		uint64_t flags;
		long r = te_open_flags(pi, c, &flags);
		if (r < 0)
			return r;
		writes = te_open_writes(flags) ? 1 : 0;
	}
	if (!writes)
		return TE_DECLINE;
	struct te_bufset *set = te_set_get();
	char *raw = set->b[0], *abs = set->b[1];
	long ret = TE_DECLINE;
	for (int i = 0; i < 2 && pi->path[i] >= 0; i++) {
		if (!(writes & (1 << i)))
			continue;
		long r = te_path_arg(pi, i, c, raw, abs);
		if (r < 0) {
			ret = r;
			break;
		}
		/* data holds NUL-separated prefixes; len is their total size. */
		for (const char *pre = a->data; r == 0 && pre < a->data + a->len; pre += te_strlen(pre) + 1) {
			if (te_under(abs, pre, te_strlen(pre))) {
				ret = -EROFS;
				goto done;
			}
		}
	}
done:
	te_set_put(set);
	return ret;
}

long te_vfile(const struct te_action *a, struct te_call *c) {
	const struct te_pathinfo *pi = te_pathinfo_of(c->nr);
	if (!pi || pi->flags == -1)
		return TE_DECLINE; /* only the open family */
	struct te_bufset *set = te_set_get();
	char *raw = set->b[0], *abs = set->b[1];
	long ret = TE_DECLINE;
	long r = te_path_arg(pi, 0, c, raw, abs);
	if (r < 0) {
		ret = r;
		goto done;
	}
	if (r > 0 || strcmp(abs, a->data) != 0)
		goto done;
	uint64_t flags;
	if ((r = te_open_flags(pi, c, &flags)) < 0) {
		ret = r;
		goto done;
	}
	if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL)) {
		ret = -EEXIST;
		goto done;
	}
	if (flags & O_DIRECTORY) {
		ret = -ENOTDIR;
		goto done;
	}
	if (te_open_writes(flags & ~(uint64_t)O_CREAT)) {
		ret = -EROFS;
		goto done;
	}
	long mfd = te_syscall6(SYS_memfd_create, (long)"trapemu-virtual-file", MFD_CLOEXEC, 0, 0, 0, 0);
	if (mfd < 0) {
		ret = mfd;
		goto done;
	}
	for (uint32_t off = 0; off < a->len2;) {
		long n = te_syscall6(SYS_write, mfd, (long)(a->data2 + off), a->len2 - off, 0, 0, 0);
		if (n == -EINTR)
			continue;
		if (n <= 0) {
			te_syscall6(SYS_close, mfd, 0, 0, 0, 0, 0);
			ret = n < 0 ? n : -EIO;
			goto done;
		}
		off += (uint32_t)n;
	}
	/* A read-only descriptor of its own, with the caller's flags. */
	te_fd_path(raw, mfd);
	ret = te_syscall6(SYS_openat, AT_FDCWD, (long)raw, (long)(flags & (O_CLOEXEC | O_NONBLOCK)) | O_RDONLY, 0, 0, 0);
	te_syscall6(SYS_close, mfd, 0, 0, 0, 0, 0);
done:
	te_set_put(set);
	return ret;
}

/* For the tracer: the path arguments of syscall nr. Returns 0 if none. */
long te_trace_path_args(long nr, int *p0, int *p1) {
	const struct te_pathinfo *pi = te_pathinfo_of(nr);
	if (!pi)
		return 0;
	*p0 = pi->path[0];
	*p1 = pi->path[1];
	return 1;
}
