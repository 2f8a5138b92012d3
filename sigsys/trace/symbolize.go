package trace

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/trapemu/trapemu/cgo"
)

// Symbolizer names code addresses: Go functions (with file and line), C
// functions of shared objects (object!symbol+offset, from the dynamic
// symbol tables), else the mapping and offset. It caches answers.
type Symbolizer struct {
	mu    sync.Mutex
	cache map[uint64]string
	maps  []mapping
}

type mapping struct {
	lo, hi, off uint64
	name        string
}

// NewSymbolizer returns a symbolizer for this process.
func NewSymbolizer() *Symbolizer { return &Symbolizer{cache: map[uint64]string{}} }

// Name names pc.
func (s *Symbolizer) Name(pc uint64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.cache[pc]; ok {
		return n
	}
	n := s.name(pc)
	s.cache[pc] = n
	return n
}

func (s *Symbolizer) name(pc uint64) string {
	// pc is a return address: the call is just before it.
	if f := runtime.FuncForPC(uintptr(pc - 1)); f != nil {
		file, line := f.FileLine(uintptr(pc - 1))
		return fmt.Sprintf("%s (%s:%d)", f.Name(), filepath.Base(file), line)
	}
	if obj, sym, addr := cgo.Dladdr(pc - 1); sym != "" {
		return fmt.Sprintf("%s!%s+%#x", filepath.Base(obj), sym, pc-addr)
	}
	if m, ok := s.mapping(pc); ok {
		return fmt.Sprintf("%s+%#x", filepath.Base(m.name), pc-m.lo+m.off)
	}
	return fmt.Sprintf("%#x", pc)
}

func (s *Symbolizer) mapping(pc uint64) (mapping, bool) {
	find := func() (mapping, bool) {
		i := sort.Search(len(s.maps), func(i int) bool { return s.maps[i].hi > pc })
		if i < len(s.maps) && s.maps[i].lo <= pc {
			return s.maps[i], true
		}
		return mapping{}, false
	}
	if m, ok := find(); ok {
		return m, true
	}
	s.maps = readMaps() // new libraries may have been loaded
	return find()
}

func readMaps() []mapping {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.Contains(fields[1], "x") {
			continue
		}
		lohi := strings.SplitN(fields[0], "-", 2)
		lo, _ := strconv.ParseUint(lohi[0], 16, 64)
		hi, _ := strconv.ParseUint(lohi[1], 16, 64)
		off, _ := strconv.ParseUint(fields[2], 16, 64)
		out = append(out, mapping{lo, hi, off, fields[5]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].lo < out[j].lo })
	return out
}
