package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/trapemu/trapemu/cmd/trapemu/internal/agent"
	"github.com/trapemu/trapemu/sigsys/trace"
	"github.com/trapemu/trapemu/trap"
)

var binDir string

// TestMain builds the command and the preload object, as the README says.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "trapemu-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, args := range [][]string{
		{"build", "-o", dir + "/", "."},
		{"build", "-buildmode=c-shared", "-o", filepath.Join(dir, preloadName), "./preload"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func trapemu(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "trapemu"), args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("trapemu %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

func TestTraceRunsProgramsAndKeepsTheirStatus(t *testing.T) {
	out, errs, code := trapemu(t, "trace", "-f", "-o", os.DevNull, "--", "/bin/sh", "-c", "echo $((6*7)) | cat; exit 3")
	if out != "42\n" || code != 3 {
		t.Fatalf("stdout %q, exit %d, stderr:\n%s", out, code, errs)
	}
	out, _, code = trapemu(t, "trace", "-o", os.DevNull, "--", "/bin/sh", "-c", "kill -TERM $$")
	if code != 128+15 {
		t.Fatalf("killed program: exit %d", code)
	}
	_ = out
}

func TestTraceTextJSONSummary(t *testing.T) {
	dir := t.TempDir()
	trapemu(t, "trace", "-o", filepath.Join(dir, "text"), "--", "/bin/cat", "/etc/hostname", "/nonexistent")
	text, _ := os.ReadFile(filepath.Join(dir, "text"))
	for _, want := range []string{`openat\(AT_FDCWD, "/etc/hostname", O_RDONLY\) = \d+\n`, `openat\(AT_FDCWD, "/nonexistent", O_RDONLY\) = -1 ENOENT \(No such file or directory\)`} {
		if !regexp.MustCompile(want).Match(text) {
			t.Errorf("text trace lacks %s:\n%s", want, text)
		}
	}
	trapemu(t, "trace", "--json", "-o", filepath.Join(dir, "json"), "--", "/bin/cat", "/etc/hostname")
	f, _ := os.Open(filepath.Join(dir, "json"))
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		var j trace.JSONRecord
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("bad JSON %q: %v", sc.Text(), err)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("%d JSON records", n)
	}
	trapemu(t, "trace", "-c", "-o", filepath.Join(dir, "sum"), "--", "/bin/cat", "/etc/hostname")
	sum, _ := os.ReadFile(filepath.Join(dir, "sum"))
	if !regexp.MustCompile(`(?m)^\s*[\d.]+\s+[\d.]+\s+\d+\s+1\s+read$`).MatchString(string(sum)) && !strings.Contains(string(sum), " read\n") {
		t.Fatalf("summary:\n%s", sum)
	}
}

func TestStaticProgramRefused(t *testing.T) {
	// A pure Go program built without cgo is statically linked.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module static\n"), 0o644)
	build := exec.Command("go", "build", "-o", "static", ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	_, errs, code := trapemu(t, "trace", "--", filepath.Join(dir, "static"))
	if code == 0 || !strings.Contains(errs, "statically linked") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

// straceCounts runs argv under strace -ff (one file per process) with the
// agent loaded but doing nothing but its marker call, and counts, per
// syscall, what each process's main thread did after its marker (or, for a
// forked child, from its start), up to an execve (whose new image has its
// loader run first): the program's own calls.
func straceCounts(t *testing.T, argv []string) map[string]int {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-ff", "-qq", "-o", filepath.Join(dir, "s"),
		"-E", "LD_PRELOAD=" + filepath.Join(binDir, preloadName), "-E", agent.EnvMarkerOnly + "=1", "--"}, argv...)
	cmd := exec.Command("strace", args...)
	cmd.Stdout, cmd.Stderr = nil, nil // /dev/null, as for traceCounts
	cmd.Run()
	files, _ := filepath.Glob(filepath.Join(dir, "s.*"))
	call := regexp.MustCompile(`^([a-z0-9_]+)\(`)
	// glibc's fork() is clone(..., SIGCHLD, ...); threads come from clone3.
	fork := regexp.MustCompile(`^(?:clone\(.*SIGCHLD.*|fork\(\)|vfork\(\)).*= (\d+)$`)
	lines := map[string][]string{}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines[strings.TrimPrefix(filepath.Ext(f), ".")] = strings.Split(string(b), "\n")
	}
	forkedFrom := map[string]bool{} // pid -> forked by a process of the program
	var visit func(pid string, fromStart bool)
	counts := map[string]int{}
	visit = func(pid string, fromStart bool) {
		started := fromStart
		for _, l := range lines[pid] {
			m := call.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			name := m[1]
			if strings.Contains(l, agent.MarkerPath) {
				started = true
				continue
			}
			if name == "execve" {
				started = false
			}
			if f := fork.FindStringSubmatch(l); f != nil && started && !forkedFrom[f[1]] {
				forkedFrom[f[1]] = true
				defer visit(f[1], true)
			}
			if started {
				counts[name]++
			}
		}
	}
	// The program is strace's first child: the lowest pid of the run.
	root := -1
	for pid := range lines {
		if n, err := strconv.Atoi(pid); err == nil && (root < 0 || n < root) {
			root = n
		}
	}
	visit(strconv.Itoa(root), false)
	return counts
}

func traceCounts(t *testing.T, argv []string) map[string]int {
	t.Helper()
	out := filepath.Join(t.TempDir(), "trace.json")
	cmd := exec.Command(filepath.Join(binDir, "trapemu"), append([]string{"trace", "-f", "--json", "-o", out, "--"}, argv...)...)
	cmd.Stdout, cmd.Stderr = nil, nil // /dev/null, as for straceCounts
	cmd.Run()
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var j trace.JSONRecord
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			t.Fatalf("bad JSON %q", sc.Text())
		}
		counts[j.Syscall]++
	}
	return counts
}

// TestCountsMatchStrace compares, per syscall, what trapemu trace records
// with what strace sees the same program's threads do after the runtime
// is loaded. Set aside: what trapemu documents it cannot observe
// (trap.NeverTraced, the vDSO), and execve (through the spawner, the
// caller never returns from it to be recorded).
func TestCountsMatchStrace(t *testing.T) {
	if _, err := exec.LookPath("strace"); err != nil {
		t.Skip("strace is not installed")
	}
	skip := trap.NeverTraced()
	for k, v := range trap.VDSOCalls() {
		skip[k] = v
	}
	delete(skip, "rt_sigprocmask") // traced: the SIGSYS protection answers them
	delete(skip, "rt_sigaction")
	skip["execve"] = "through the spawner"
	skip["brk"] = "the agent's own allocations share the program's heap"
	programs := [][]string{
		{"/bin/ls", "/"},
		{"/bin/cat", "/etc/hostname"},
		{"/bin/sh", "-c", "echo a | /bin/cat >/dev/null; /bin/ls / >/dev/null"},
		{"/usr/bin/python3", "-c", "print(sum(range(10)))"},
		{"/usr/bin/git", "--version"},
	}
	for _, argv := range programs {
		t.Run(strings.Join(argv, " "), func(t *testing.T) {
			if _, err := os.Stat(argv[0]); err != nil {
				t.Skipf("%s is not installed", argv[0])
			}
			want, got := straceCounts(t, argv), traceCounts(t, argv)
			names := map[string]bool{}
			for n := range want {
				names[n] = true
			}
			for n := range got {
				names[n] = true
			}
			var diffs []string
			var sorted []string
			for n := range names {
				sorted = append(sorted, n)
			}
			sort.Strings(sorted)
			total := 0
			for _, n := range sorted {
				if _, ok := skip[n]; ok {
					continue
				}
				total += want[n]
				if want[n] != got[n] {
					diffs = append(diffs, fmt.Sprintf("%s: strace %d, trapemu %d", n, want[n], got[n]))
				}
			}
			if total == 0 {
				t.Fatalf("strace saw nothing after the marker")
			}
			if len(diffs) > 0 {
				t.Fatalf("counts differ:\n  %s", strings.Join(diffs, "\n  "))
			}
			t.Logf("%d calls, same per syscall", total)
		})
	}
}

func TestRunAppliesPolicyFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
sets:
  hostname: legacy-box
rules:
  - trap: getppid
    action: {return: 4242}
  - trap: openat
    action: {virtual_file: {path: /etc/legacy.conf, content: "mode=virtual\n"}}
  - deny: ptrace
    errno: EPERM
`), 0o644)
	out, errs, code := trapemu(t, "run", "--policy", good, "--", "/bin/sh", "-c", `echo $PPID; cat /etc/legacy.conf; hostname; exit 7`)
	if code != 7 {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	// sh reads $PPID at start-up with getppid; the hostname command asks uname.
	if out != "4242\nmode=virtual\nlegacy-box\n" {
		t.Fatalf("output %q\nstderr %s", out, errs)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - trap: getppid\n    action: {return: 1}\n  - trap: no_such_syscall\n    action: passthrough\n"), 0o644)
	_, errs, code = trapemu(t, "run", "--policy", bad, "--", "/bin/true")
	if code == 0 || !strings.Contains(errs, "bad.yaml:4:") || !strings.Contains(errs, `unknown syscall "no_such_syscall"`) {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	os.WriteFile(bad, []byte("rules:\n  - trap: getppid\n    action: {retrun: 1}\n"), 0o644)
	_, errs, _ = trapemu(t, "run", "--policy", bad, "--", "/bin/true")
	if !strings.Contains(errs, "bad.yaml:3:") || !strings.Contains(errs, `unknown action "retrun"`) {
		t.Fatalf("stderr %q", errs)
	}
	os.WriteFile(bad, []byte("rules: [\n"), 0o644)
	_, errs, _ = trapemu(t, "run", "--policy", bad, "--", "/bin/true")
	if !strings.Contains(errs, "bad.yaml:") {
		t.Fatalf("syntax error: stderr %q", errs)
	}
}

func TestProfile(t *testing.T) {
	out, errs, code := trapemu(t, "profile", "--", "/bin/ls", "/")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var p OCIProfile
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &p); err != nil {
		t.Fatalf("profile JSON: %v\n%s", err, out)
	}
	if p.DefaultAction != "SCMP_ACT_ERRNO" || len(p.Syscalls) == 0 {
		t.Fatalf("profile %+v", p)
	}
	all := strings.Join(append(p.Syscalls[0].Names, p.Syscalls[len(p.Syscalls)-1].Names...), " ")
	for _, want := range []string{"getdents64", "write", "openat", "exit_group", "execve", "mmap"} {
		if !strings.Contains(" "+all+" ", " "+want+" ") {
			t.Errorf("profile lacks %s: %v", want, p.Syscalls)
		}
	}
}
