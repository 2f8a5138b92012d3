package sigsys

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// goTextProbe exists so its address can be found both at run time and in
// the symbol table: the difference is the executable's load bias (PIE).
func goTextProbe() {}

const goTextProbeSym = "github.com/trapemu/trapemu/sigsys.goTextProbe"

// Range is an address range [Lo, Hi).
type Range struct{ Lo, Hi uintptr }

// Contains reports whether a is in r.
func (r Range) Contains(a uintptr) bool { return a >= r.Lo && a < r.Hi }

// GoText finds the Go code of this executable: [runtime.text,
// runtime.etext) from its symbol table. Without symbols (a stripped
// binary) it returns the executable's whole text mapping: C code linked
// into the binary then counts as Go code, which only means its calls get
// the fallback (safe, never a deadlock).
func GoText() (Range, error) {
	exe, err := os.Executable()
	if err != nil {
		return Range{}, err
	}
	f, err := elf.Open("/proc/self/exe")
	if err == nil {
		defer f.Close()
		if syms, err := f.Symbols(); err == nil {
			var text, etext, probe uint64
			for _, s := range syms {
				switch s.Name {
				case "runtime.text":
					text = s.Value
				case "runtime.etext":
					etext = s.Value
				case goTextProbeSym:
					probe = s.Value
				}
			}
			if text != 0 && etext > text && probe != 0 {
				bias := uint64(reflect.ValueOf(goTextProbe).Pointer()) - probe
				return Range{uintptr(text + bias), uintptr(etext + bias)}, nil
			}
		}
	}
	return mappedText(exe)
}

// mappedText spans every executable mapping of path.
func mappedText(path string) (Range, error) {
	var r Range
	err := eachMapping(func(lo, hi uintptr, perms, name string) {
		if name == path && strings.Contains(perms, "x") {
			if r.Lo == 0 || lo < r.Lo {
				r.Lo = lo
			}
			if hi > r.Hi {
				r.Hi = hi
			}
		}
	})
	if err == nil && r.Hi == 0 {
		err = fmt.Errorf("sigsys: no executable mapping of %s", path)
	}
	return r, err
}

// VDSO finds the vDSO's mapping (empty if there is none).
func VDSO() (Range, error) {
	var r Range
	err := eachMapping(func(lo, hi uintptr, perms, name string) {
		if name == "[vdso]" {
			r = Range{lo, hi}
		}
	})
	return r, err
}

func eachMapping(fn func(lo, hi uintptr, perms, name string)) error {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		lohi := strings.SplitN(fields[0], "-", 2)
		lo, err1 := strconv.ParseUint(lohi[0], 16, 64)
		hi, err2 := strconv.ParseUint(lohi[1], 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		name := ""
		if len(fields) >= 6 {
			name = fields[5]
		}
		fn(uintptr(lo), uintptr(hi), fields[1], name)
	}
	return sc.Err()
}
