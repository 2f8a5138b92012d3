package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv("SYSDEBUG_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestExample(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SYSDEBUG_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		`openat(AT_FDCWD, "/tmp/sysdebug-go", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644) = `, // Go
		"% time     seconds  usecs/call     calls    errors syscall",
		" unlink\n", // the C code's unlink(3)
		" socket\n",
		"total",
		"not observable",
		"clock_gettime",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
