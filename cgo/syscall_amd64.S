// te_syscall6(nr, a0..a5): the runtime's one passthrough syscall
// instruction. The filter lets trapped syscalls whose return address is
// te_escape through.
	.text
	.globl te_syscall6
	.type te_syscall6, @function
te_syscall6:
	movq %rdi, %rax
	movq %rsi, %rdi
	movq %rdx, %rsi
	movq %rcx, %rdx
	movq %r8, %r10
	movq %r9, %r8
	movq 8(%rsp), %r9
	syscall
	.globl te_escape
te_escape:
	ret
	.size te_syscall6, .-te_syscall6
	.section .note.GNU-stack,"",@progbits
