package cgo

import (
	"encoding/binary"
	"fmt"
	"runtime"
)

// hdrSize is the ELF header and one program header.
const hdrSize = 64 + 56

// ProxyImage returns the proxy: a static ELF executable that, on the
// socket at fd 3, waits for the program the spawner started and ends as it
// did (same exit status, or killed by the same signal). It makes every
// syscall through one instruction, mapped so that the address after it is
// escape — the runtime's own escape address: the filter, which lets calls
// from there through, needs no second check (each check costs four
// instructions in every trapped syscall's branch). It exists for amd64
// only: elsewhere exec'ing callers wait in the SIGSYS handler instead (a
// vfork parent then stays suspended until the program ends).
func ProxyImage(escape uint64) ([]byte, error) {
	if runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("cgo: no proxy image for %s", runtime.GOARCH)
	}
	code, sysOff := proxyCodeAMD64()
	target := escape - 2 - uint64(sysOff) // where the code must start
	base := (target - hdrSize) &^ 0xfff
	codeOff := int(target - base)
	img := make([]byte, codeOff, codeOff+len(code))
	le := binary.LittleEndian
	copy(img, []byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	le.PutUint16(img[16:], 2)    // ET_EXEC
	le.PutUint16(img[18:], 0x3e) // EM_X86_64
	le.PutUint32(img[20:], 1)
	le.PutUint64(img[24:], base+uint64(codeOff)) // entry
	le.PutUint64(img[32:], 64)                   // phoff
	le.PutUint16(img[52:], 64)                   // ehsize
	le.PutUint16(img[54:], 56)                   // phentsize
	le.PutUint16(img[56:], 1)                    // phnum
	ph := img[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R|X
	le.PutUint64(ph[8:], 0)
	le.PutUint64(ph[16:], base)
	le.PutUint64(ph[24:], base)
	le.PutUint64(ph[32:], uint64(codeOff+len(code)))
	le.PutUint64(ph[40:], uint64(codeOff+len(code)))
	le.PutUint64(ph[48:], 0x1000)
	for i := hdrSize; i < codeOff; i++ {
		img[i] = 0xcc // int3 padding
	}
	img = append(img, code...)
	return img, nil
}

// x86asm is a tiny assembler: bytes, labels, and rel8/rel32 fix-ups.
type x86asm struct {
	b      []byte
	labels map[string]int
	fix    []struct {
		at    int
		label string
		size  int
	}
}

func (a *x86asm) raw(b ...byte)  { a.b = append(a.b, b...) }
func (a *x86asm) label(l string) { a.labels[l] = len(a.b) }
func (a *x86asm) rel32(op []byte, l string) {
	a.raw(op...)
	a.fix = append(a.fix, struct {
		at    int
		label string
		size  int
	}{len(a.b), l, 4})
	a.raw(0, 0, 0, 0)
}
func (a *x86asm) rel8(op byte, l string) {
	a.raw(op)
	a.fix = append(a.fix, struct {
		at    int
		label string
		size  int
	}{len(a.b), l, 1})
	a.raw(0)
}
func (a *x86asm) movEAX(v uint32) { a.raw(0xb8); a.b = binary.LittleEndian.AppendUint32(a.b, v) }
func (a *x86asm) movEDI(v uint32) { a.raw(0xbf); a.b = binary.LittleEndian.AppendUint32(a.b, v) }
func (a *x86asm) movESI(v uint32) { a.raw(0xbe); a.b = binary.LittleEndian.AppendUint32(a.b, v) }
func (a *x86asm) movEDX(v uint32) { a.raw(0xba); a.b = binary.LittleEndian.AppendUint32(a.b, v) }
func (a *x86asm) call(l string)   { a.rel32([]byte{0xe8}, l) }

func (a *x86asm) done() []byte {
	for _, f := range a.fix {
		rel := a.labels[f.label] - (f.at + f.size)
		if f.size == 1 {
			a.b[f.at] = byte(int8(rel))
		} else {
			binary.LittleEndian.PutUint32(a.b[f.at:], uint32(int32(rel)))
		}
	}
	return a.b
}

// Linux x86_64 syscall numbers the proxy uses.
const (
	amd64Read         = 0
	amd64RtSigaction  = 13
	amd64RtSigprocmsk = 14
	amd64Getpid       = 39
	amd64Kill         = 62
	amd64ExitGroup    = 231
	amd64CloseRange   = 436
)

func proxyCodeAMD64() ([]byte, int) {
	a := &x86asm{labels: map[string]int{}}
	// Unblock every signal (execve kept the handler's mask: all blocked).
	a.raw(0x48, 0x83, 0xec, 0x10)             // sub rsp, 16
	a.raw(0x31, 0xc0, 0x48, 0x89, 0x04, 0x24) // xor eax,eax; mov [rsp],rax
	a.movEAX(amd64RtSigprocmsk)
	a.movEDI(2)                   // SIG_SETMASK
	a.raw(0x48, 0x89, 0xe6)       // mov rsi, rsp
	a.raw(0x31, 0xd2)             // xor edx, edx
	a.raw(0x41, 0xba, 8, 0, 0, 0) // mov r10d, 8
	a.call("sys")
	// close_range(0, 2, 0); close_range(4, ~0, 0): only the socket stays.
	a.movEAX(amd64CloseRange)
	a.raw(0x31, 0xff) // xor edi, edi
	a.movESI(2)
	a.raw(0x31, 0xd2)
	a.call("sys")
	a.movEAX(amd64CloseRange)
	a.movEDI(4)
	a.movESI(0xffffffff)
	a.raw(0x31, 0xd2)
	a.call("sys")
	a.label("loop")
	a.raw(0x31, 0xc0) // xor eax, eax: read
	a.movEDI(3)
	a.raw(0x48, 0x89, 0xe6) // mov rsi, rsp
	a.movEDX(8)
	a.call("sys")
	a.raw(0x48, 0x83, 0xf8, 0xfc) // cmp rax, -4 (EINTR)
	a.rel8(0x74, "loop")
	a.raw(0x48, 0x83, 0xf8, 0x08) // cmp rax, 8
	a.rel8(0x75, "gone")
	a.raw(0x8b, 0x04, 0x24) // mov eax, [rsp]
	a.raw(0x83, 0xf8, 0x01) // cmp eax, 1
	a.rel8(0x74, "exited")
	a.raw(0x83, 0xf8, 0x02) // cmp eax, 2
	a.rel8(0x74, "killed")
	a.rel8(0xeb, "loop")
	a.label("exited")
	a.raw(0x8b, 0x7c, 0x24, 0x04) // mov edi, [rsp+4]
	a.movEAX(amd64ExitGroup)
	a.call("sys")
	a.label("killed")
	a.raw(0x44, 0x8b, 0x64, 0x24, 0x04) // mov r12d, [rsp+4]
	a.raw(0x48, 0x83, 0xec, 0x20)       // sub rsp, 32: a zeroed sigaction (SIG_DFL)
	a.raw(0x31, 0xc0)
	a.raw(0x48, 0x89, 0x04, 0x24)
	a.raw(0x48, 0x89, 0x44, 0x24, 0x08)
	a.raw(0x48, 0x89, 0x44, 0x24, 0x10)
	a.raw(0x48, 0x89, 0x44, 0x24, 0x18)
	a.raw(0x44, 0x89, 0xe7) // mov edi, r12d
	a.raw(0x48, 0x89, 0xe6) // mov rsi, rsp
	a.raw(0x31, 0xd2)       // xor edx, edx
	a.raw(0x41, 0xba, 8, 0, 0, 0)
	a.movEAX(amd64RtSigaction)
	a.call("sys")
	a.movEAX(amd64Getpid)
	a.call("sys")
	a.raw(0x89, 0xc7)       // mov edi, eax
	a.raw(0x44, 0x89, 0xe6) // mov esi, r12d
	a.movEAX(amd64Kill)
	a.call("sys")
	a.raw(0x41, 0x8d, 0xbc, 0x24, 0x80, 0, 0, 0) // lea edi, [r12+128]
	a.movEAX(amd64ExitGroup)
	a.call("sys")
	a.label("gone")
	a.movEDI(127)
	a.movEAX(amd64ExitGroup)
	a.call("sys")
	a.label("sys")
	sysOff := len(a.b)
	a.raw(0x0f, 0x05, 0xc3) // syscall; ret
	return a.done(), sysOff
}
