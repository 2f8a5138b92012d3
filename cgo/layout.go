package cgo

/*
#define _GNU_SOURCE
#include <stddef.h>
#include <ucontext.h>
#include "trapemu.h"

static long te_layout(int what) {
#if defined(__x86_64__)
	static const int args[6] = {REG_RDI, REG_RSI, REG_RDX, REG_R10, REG_R8, REG_R9};
	if (what < 6) return offsetof(ucontext_t, uc_mcontext.gregs) + 8 * args[what];
	if (what == 6) return offsetof(ucontext_t, uc_mcontext.gregs) + 8 * REG_RAX;
	if (what == 7) return offsetof(ucontext_t, uc_mcontext.gregs) + 8 * REG_RIP;
	if (what == 8) return offsetof(ucontext_t, uc_mcontext.gregs) + 8 * REG_RAX;
#elif defined(__aarch64__)
	if (what < 6) return offsetof(ucontext_t, uc_mcontext.regs) + 8 * what;
	if (what == 6) return offsetof(ucontext_t, uc_mcontext.regs) + 8 * 8;
	if (what == 7) return offsetof(ucontext_t, uc_mcontext.pc);
	if (what == 8) return offsetof(ucontext_t, uc_mcontext.regs);
#endif
	if (what == 9) return TE_KIND_RETURN * 100000000 + TE_KIND_ERRNO * 10000000 + TE_KIND_PASSTHROUGH * 1000000 + TE_KIND_COPYOUT * 100000 + TE_KIND_GO * 10000 + TE_KIND_REDIRECT * 1000 + TE_KIND_VFILE * 100 + TE_KIND_READONLY * 10 + TE_KIND_GROUPS;
	return -1;
}
*/
import "C"

// CLayout reports the C compiler's view of where a ucontext_t keeps the
// registers of a trapped call (args 0-5, number, IP, return value), for
// checking package arch's tables against it.
func CLayout() (args [6]int, nr, ip, ret int) {
	for i := range args {
		args[i] = int(C.te_layout(C.int(i)))
	}
	return args, int(C.te_layout(6)), int(C.te_layout(7)), int(C.te_layout(8))
}

func cKinds() int { return int(C.te_layout(9)) }
