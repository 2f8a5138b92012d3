package main

import (
	"os"
	"strings"
	"testing"

	"github.com/trapemu/trapemu/internal/childtest"
)

func TestMain(m *testing.M) { childtest.MainInChild(m, "LEGACY_RUN_MAIN", main) }

func TestExample(t *testing.T) {
	out := childtest.RunMain(t, "LEGACY_RUN_MAIN")
	parts := strings.SplitN(out, "== the library, virtualized", 2)
	if len(parts) != 2 {
		t.Fatalf("output:\n%s", out)
	}
	for _, want := range []string{
		"uid: 0 (root, as required)",
		"config /etc/legacy-app.conf: mode=production owner=accounting",
		"host: Linux mainframe 2.4.20-legacy",
		"logged to /var/log/legacy-app.log",
		"(exit 0)",
		"legacy-app started on mainframe in mode production",
	} {
		if !strings.Contains(parts[1], want) {
			t.Errorf("virtualized run lacks %q:\n%s", want, out)
		}
	}
	if os.Getuid() != 0 && !strings.Contains(parts[0], "must run as root") {
		t.Errorf("the plain run should fail its root check:\n%s", out)
	}
	if _, err := os.Stat("/var/log/legacy-app.log"); err == nil {
		t.Errorf("the library wrote the real /var/log")
	}
}
