package main

import (
	"strings"
	"testing"

	"github.com/trapemu/trapemu/internal/childtest"
)

func TestMain(m *testing.M) { childtest.MainInChild(m, "VIRTUALIZE_RUN_MAIN", main) }

func TestExample(t *testing.T) {
	out := childtest.RunMain(t, "VIRTUALIZE_RUN_MAIN")
	after := strings.SplitN(out, "after Install", 2)
	if len(after) != 2 {
		t.Fatalf("output:\n%s", out)
	}
	want := "ppid=1 uid=1000 nodename=legacy-box release=2.6.32-legacy"
	for _, who := range []string{"Go: ", "C:  "} {
		if !strings.Contains(after[1], who+want) {
			t.Errorf("%s view after Install is not %q:\n%s", who, want, out)
		}
	}
	if strings.Contains(after[0], "legacy-box") {
		t.Errorf("faked before Install:\n%s", out)
	}
}
