package main

import (
	"strings"
	"testing"

	"github.com/trapemu/trapemu/internal/childtest"
)

func TestMain(m *testing.M) { childtest.MainInChild(m, "SYSDEBUG_RUN_MAIN", main) }

func TestExample(t *testing.T) {
	out := childtest.RunMain(t, "SYSDEBUG_RUN_MAIN")
	for _, want := range []string{
		`openat(AT_FDCWD, "/tmp/sysdebug-go", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644) = `, // Go
		"% time     seconds  usecs/call     calls    errors syscall",
		" unlink\n", // the C code's unlink(3)
		" socket\n",
		"total",
		"not observable",
		"clock_gettime",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
