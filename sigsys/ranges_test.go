package sigsys

import (
	"reflect"
	"runtime"
	"testing"

	"github.com/trapemu/trapemu/cgo"
)

func TestGoText(t *testing.T) {
	r, err := GoText()
	if err != nil {
		t.Fatal(err)
	}
	for name, pc := range map[string]uintptr{
		"goTextProbe": reflect.ValueOf(goTextProbe).Pointer(),
		"runtime.GC":  reflect.ValueOf(runtime.GC).Pointer(),
		"TestGoText":  reflect.ValueOf(TestGoText).Pointer(),
	} {
		if !r.Contains(pc) {
			t.Errorf("Go function %s at %#x outside %#x-%#x", name, pc, r.Lo, r.Hi)
		}
	}
	// The C core's syscall instruction is C code: outside.
	if esc := uintptr(cgo.EscapeIP()); r.Contains(esc) {
		t.Errorf("C code at %#x inside the Go text %#x-%#x", esc, r.Lo, r.Hi)
	}
	if runtime.FuncForPC(r.Lo-1) != nil || runtime.FuncForPC(r.Hi) != nil {
		t.Errorf("range %#x-%#x is not the runtime's", r.Lo, r.Hi)
	}
}

func TestVDSO(t *testing.T) {
	r, err := VDSO()
	if err != nil {
		t.Fatal(err)
	}
	if r.Hi <= r.Lo {
		t.Skip("no vDSO mapped")
	}
}
