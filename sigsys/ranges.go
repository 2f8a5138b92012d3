package sigsys

import (
	"bufio"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
)

// goTextProbe is a Go function whose address anchors the search for the
// Go text.
func goTextProbe() {}

// Range is an address range [Lo, Hi).
type Range struct{ Lo, Hi uintptr }

// Contains reports whether a is in r.
func (r Range) Contains(a uintptr) bool { return a >= r.Lo && a < r.Hi }

// GoText finds the Go code of this executable: the range of program
// counters the runtime itself knows as Go functions ([minpc, maxpc) of the
// module, which runtime.FuncForPC answers for), found by binary search
// around a known Go function. It needs no symbol table, so stripped
// binaries (go run, go test) work. C code linked into the binary lies
// outside it with external linking (cgo's default); were some inside, its
// calls would only get the fallback.
func GoText() (Range, error) {
	probe := reflect.ValueOf(goTextProbe).Pointer()
	isGo := func(pc uintptr) bool { return runtime.FuncForPC(pc) != nil }
	if !isGo(probe) {
		exe, err := os.Executable()
		if err != nil {
			return Range{}, err
		}
		return mappedText(exe)
	}
	// Lowest pc with isGo: in [0, probe].
	lo, hi := uintptr(0), probe
	for lo < hi {
		mid := lo + (hi-lo)/2
		if isGo(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	start := lo
	// First pc past the Go text: in (probe, 1<<47].
	lo, hi = probe+1, uintptr(1)<<47
	for lo < hi {
		mid := lo + (hi-lo)/2
		if isGo(mid) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return Range{start, lo}, nil
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
