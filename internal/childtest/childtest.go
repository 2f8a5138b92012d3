// Package childtest runs test scenarios in child processes: a seccomp
// filter cannot be removed, so every scenario that installs one re-executes
// the test binary with the scenario's name and runs alone there.
package childtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

const envScenario = "TRAPEMU_CHILDTEST_SCENARIO"

var scenarios = map[string]func() error{}

// Register adds a scenario. fn runs in a fresh child process; returning an
// error makes the child print it and exit with status 1.
func Register(name string, fn func() error) {
	if _, dup := scenarios[name]; dup {
		panic("childtest: duplicate scenario " + name)
	}
	scenarios[name] = fn
}

// Main is called from TestMain. In a child it runs the requested scenario
// and exits; in the parent it runs the tests.
func Main(m *testing.M) {
	if name := os.Getenv(envScenario); name != "" {
		fn, ok := scenarios[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "childtest: no scenario %q\n", name)
			os.Exit(2)
		}
		if err := fn(); err != nil {
			fmt.Fprintf(os.Stderr, "scenario %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Println("SCENARIO-OK")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// Result is what a child did.
type Result struct {
	Stdout, Stderr string
	// ExitCode is the exit status, or -1 when a signal ended the child.
	ExitCode int
	// Signal ended the child, or 0.
	Signal syscall.Signal
}

// OK reports whether the scenario returned nil.
func (r Result) OK() bool { return r.ExitCode == 0 && strings.Contains(r.Stdout, "SCENARIO-OK") }

func (r Result) String() string {
	return fmt.Sprintf("exit=%d signal=%v\nstdout:\n%s\nstderr:\n%s", r.ExitCode, r.Signal, r.Stdout, r.Stderr)
}

// Run runs scenario name in a child with extra environment entries. It
// gives up after timeout (a hang is a failure, not a timing assertion).
func Run(t testing.TB, name string, timeout time.Duration, env ...string) Result {
	t.Helper()
	return RunWrapped(t, name, timeout, nil, env...)
}

// RunWrapped is Run with the child started under a wrapper command (such as
// strace -f -o /dev/null).
func RunWrapped(t testing.TB, name string, timeout time.Duration, wrapper []string, env ...string) Result {
	t.Helper()
	r, hung := run(t, name, timeout, wrapper, env...)
	if hung {
		t.Fatalf("scenario %s hung for %v\nstdout:\n%s\nstderr:\n%s", name, timeout, r.Stdout, r.Stderr)
	}
	return r
}

// RunMayHang runs a scenario that may hang (for tests that show what goes
// wrong); a hung child is killed and reported.
func RunMayHang(t testing.TB, name string, timeout time.Duration, env ...string) (Result, bool) {
	t.Helper()
	return run(t, name, timeout, nil, env...)
}

func run(t testing.TB, name string, timeout time.Duration, wrapper []string, env ...string) (Result, bool) {
	t.Helper()
	if _, ok := scenarios[name]; !ok {
		t.Fatalf("childtest: no scenario %q", name)
	}
	argv := append(append([]string(nil), wrapper...), os.Args[0], "-test.run=^$")
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), envScenario+"="+name), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGQUIT) // Go prints every goroutine
		select {
		case <-done:
		case <-time.After(time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return Result{Stdout: out.String(), Stderr: errb.String(), ExitCode: -1}, true
	}
	res := Result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		res.ExitCode = ws.ExitStatus()
		if ws.Signaled() {
			res.Signal = ws.Signal()
		}
	default:
		t.Fatalf("wait child: %v", err)
	}
	return res, false
}

// MustRun runs a scenario and fails the test unless it succeeded.
func MustRun(t testing.TB, name string, env ...string) Result {
	t.Helper()
	r := Run(t, name, 5*time.Minute, env...)
	if !r.OK() {
		t.Fatalf("scenario %s failed:\n%v", name, r)
	}
	return r
}

// Names lists the registered scenarios.
func Names() []string {
	var out []string
	for n := range scenarios {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// MainInChild is TestMain for an example program: when the test binary is
// started with envVar=1 it runs the program's main (in a child, since
// Install can't be undone) and exits; otherwise it runs the tests.
func MainInChild(m *testing.M, envVar string, main func()) {
	if os.Getenv(envVar) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// RunMain runs the example's main in a child (see MainInChild) and returns
// its combined output.
func RunMain(t testing.TB, envVar string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envVar+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return string(out)
}
