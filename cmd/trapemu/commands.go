package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/cmd/trapemu/internal/agent"
	"github.com/trapemu/trapemu/cmd/trapemu/internal/policyfile"
	"github.com/trapemu/trapemu/sigsys/trace"
	"github.com/trapemu/trapemu/trap"
)

func cmdTrace(args []string) (int, error) {
	fs := flag.NewFlagSet("trace", flag.ContinueOnError)
	follow := fs.Bool("f", false, "follow forked children and the programs they run")
	summary := fs.Bool("c", false, "print a summary table instead of each call")
	out := fs.String("o", "", "write the trace to FILE (default stderr)")
	asJSON := fs.Bool("json", false, "one JSON object per call")
	expr := fs.String("e", "", "trace=NAMES: trace only these syscalls (comma-separated)")
	frames := fs.Int("frames", 0, "return addresses to record above each call site (0..8)")
	preload := fs.String("preload", "", "the preload shared object")
	flags, prog := splitArgs(args)
	if err := fs.Parse(flags); err != nil {
		return 2, err
	}
	names := "all"
	if *expr != "" {
		v, ok := strings.CutPrefix(*expr, "trace=")
		if !ok || v == "" {
			return 2, fmt.Errorf("-e: only trace=NAME,NAME... is supported")
		}
		names = v
	}
	w, closeOut, err := output(*out)
	if err != nil {
		return 1, err
	}
	defer closeOut()
	var sink trace.Sink
	var sum *trace.Summary
	switch {
	case *summary:
		sum = trace.NewSummary(w)
		sum.Unobservable = unobservable(names == "all")
		sink = sum
	case *asJSON:
		sink = trace.JSON(w, nil)
	default:
		sink = &straceText{w: w}
	}
	write := sink.Write
	if names != "all" {
		wanted := map[string]bool{}
		for _, n := range strings.Split(names, ",") {
			wanted[strings.TrimSpace(n)] = true
		}
		write = func(r *trace.Record) {
			if wanted[r.Name] {
				sink.Write(r)
			}
		}
	}
	s := &session{follow: *follow, records: write}
	env := []string{agent.EnvTrace + "=" + names, fmt.Sprintf("%s=%d", agent.EnvFrames, *frames)}
	code, err := s.launch(*preload, prog, env)
	sink.Close()
	return code, err
}

// unobservable lists what a trace can't show.
func unobservable(all bool) map[string]string {
	out := trap.VDSOCalls()
	if all {
		out = trap.Unobservable()
	}
	out["(the dynamic loader)"] = "calls made before the runtime is loaded (execve, the loader's mmap/openat/read/...) happen before any handler exists"
	return out
}

// straceText writes strace -f style lines.
type straceText struct {
	w io.Writer
}

func (t *straceText) Write(r *trace.Record) {
	fmt.Fprintf(t.w, "[pid %5d] %s\n", r.TID, trace.Call(r))
}

func (t *straceText) Close() error { return nil }

func cmdRun(args []string) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	policy := fs.String("policy", "", "the policy file (YAML or JSON)")
	preload := fs.String("preload", "", "the preload shared object")
	flags, prog := splitArgs(args)
	if err := fs.Parse(flags); err != nil {
		return 2, err
	}
	if *policy == "" {
		return 2, fmt.Errorf("run: --policy FILE is required")
	}
	if _, err := policyfile.Load(*policy); err != nil {
		return 2, err
	}
	abs, _ := filepath.Abs(*policy)
	s := &session{follow: true, records: func(*trace.Record) {}}
	return s.launch(*preload, prog, []string{agent.EnvPolicy + "=" + abs})
}

// OCIProfile is the seccomp section of an OCI runtime spec (Docker's
// --security-opt seccomp=FILE format).
type OCIProfile struct {
	DefaultAction string       `json:"defaultAction"`
	Architectures []string     `json:"architectures"`
	Syscalls      []OCISyscall `json:"syscalls"`
}

// OCISyscall is one entry of an OCI profile.
type OCISyscall struct {
	Names   []string `json:"names"`
	Action  string   `json:"action"`
	Comment string   `json:"comment,omitempty"`
}

// loaderCalls are made before the runtime is loaded: a program needs them
// though no trace sees them.
var loaderCalls = []string{"execve", "brk", "arch_prctl", "access", "openat", "read", "pread64", "fstat", "newfstatat",
	"close", "mmap", "mprotect", "munmap", "set_tid_address", "set_robust_list", "rseq", "prlimit64", "getrandom"}

func cmdProfile(args []string) (int, error) {
	fs := flag.NewFlagSet("profile", flag.ContinueOnError)
	out := fs.String("o", "", "write the profile to FILE (default stdout)")
	preload := fs.String("preload", "", "the preload shared object")
	flags, prog := splitArgs(args)
	if err := fs.Parse(flags); err != nil {
		return 2, err
	}
	seen := map[string]bool{}
	s := &session{follow: true, records: func(r *trace.Record) { seen[r.Name] = true }}
	code, err := s.launch(*preload, prog, []string{agent.EnvTrace + "=all"})
	if err != nil {
		return code, err
	}
	a := arch.Native()
	var observed []string
	for n := range seen {
		observed = append(observed, n)
	}
	sort.Strings(observed)
	var unseen []string
	for n := range trap.NeverTraced() {
		if _, ok := a.SyscallNumber(n); ok && !seen[n] {
			unseen = append(unseen, n)
		}
	}
	for _, n := range loaderCalls {
		if _, ok := a.SyscallNumber(n); ok && !seen[n] {
			unseen = append(unseen, n)
		}
	}
	sort.Strings(unseen)
	unseen = dedup(unseen)
	p := OCIProfile{DefaultAction: "SCMP_ACT_ERRNO", Architectures: []string{ociArch(a)},
		Syscalls: []OCISyscall{{Names: observed, Action: "SCMP_ACT_ALLOW", Comment: "made by the run"}}}
	if len(unseen) > 0 {
		p.Syscalls = append(p.Syscalls, OCISyscall{Names: unseen, Action: "SCMP_ACT_ALLOW",
			Comment: "made before trapemu is loaded, or never observable in process; allowed so the program can run"})
	}
	w := io.Writer(nil)
	var closeOut func() error
	if *out == "" {
		w, closeOut = stdout(), func() error { return nil }
	} else if w, closeOut, err = output(*out); err != nil {
		return 1, err
	}
	defer closeOut()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return code, enc.Encode(p)
}

func ociArch(a *arch.Info) string {
	if a == arch.ARM64 {
		return "SCMP_ARCH_AARCH64"
	}
	return "SCMP_ARCH_X86_64"
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
