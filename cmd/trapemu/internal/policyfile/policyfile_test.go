package policyfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/trapemu/trapemu/trap"
)

func TestErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		src  string
		line string
		want string
	}{
		{"rules:\n  - trap: getppid\n    action: {return: x}\n", "p.yaml:3:", "not a number"},
		{"rules:\n  - trap: nope\n    action: passthrough\n", "p.yaml:2:", "unknown syscall"},
		{"rules:\n  - deny: ptrace\n    errno: EWHAT\n", "p.yaml:3:", "unknown errno"},
		{"rules:\n  - trap: socket\n    args: [{arg: 0, op: between}]\n    action: passthrough\n", "p.yaml:3:", "unknown op"},
		{"sets:\n  bogus: 1\n", "p.yaml:2:", "unknown set"},
		{"rules: [\n", "p.yaml:", "did not find"},
		{"{\"rules\": [{\"trap\": \"getppid\", \"action\": {\"return\": 1}}, {\"trap\": \"getppid\", \"action\": {\"return\": 1}}]}", "p.yaml:1:", "repeats rule 1"},
	}
	for _, c := range cases {
		_, err := Parse("p.yaml", []byte(c.src))
		var pe *Error
		if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), c.line) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %s ... %s", c.src, err, c.line, c.want)
		}
	}
}

func TestGoodPolicy(t *testing.T) {
	p, err := Parse("p.yaml", []byte(`
foreign_arch: errno:ENOSYS
trace: [read, write]
sets:
  read_only: [/etc]
  identity: {uid: 0}
rules:
  - trap: getppid
    action: {return: 4242}
  - trap: socket
    args: [{arg: 0, op: eq, value: 2, low32: true}]
    action: {errno: EACCES}
  - kill: kexec_load
`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Compile(trap.CompileOptions{EscapeIP: 1}); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse: any input is either refused with a line-numbered error or
// gives a policy that compiles; never a panic.
func FuzzParse(f *testing.F) {
	f.Add("rules:\n  - trap: getppid\n    action: {return: 4242}\n")
	f.Add("sets: {read_only: [/etc], hostname: box}\ntrace: all\n")
	f.Add("{\"rules\": [{\"deny\": \"ptrace\", \"errno\": \"EPERM\"}]}")
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Parse("f.yaml", []byte(src))
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		if _, err := p.Compile(trap.CompileOptions{EscapeIP: 1}); err != nil {
			t.Fatalf("accepted a policy that does not compile: %v", err)
		}
	})
}
