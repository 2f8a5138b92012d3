package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	if os.Getenv("VIRTUALIZE_RUN_MAIN") == "1" {
		main() // in a child: Install can't be undone
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestExample(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIRTUALIZE_RUN_MAIN=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	after := strings.SplitN(string(out), "after Install", 2)
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
