// te_syscall6(nr, a0..a5): the runtime's one passthrough syscall
// instruction. The filter lets trapped syscalls whose return address is
// te_escape through.
	.text
	.globl te_syscall6
	.type te_syscall6, %function
te_syscall6:
	mov x8, x0
	mov x0, x1
	mov x1, x2
	mov x2, x3
	mov x3, x4
	mov x4, x5
	mov x5, x6
	svc #0
	.globl te_escape
te_escape:
	ret
	.size te_syscall6, .-te_syscall6
	.section .note.GNU-stack,"",%progbits
