// Package policyfile reads trapemu policy files (YAML, or JSON, which is
// YAML too): the same rules and actions as the library. Every error names
// the file, the line and the reason.
//
//	foreign_arch: kill            # kill | allow | errno:ENOSYS
//	trace: all                    # or a list of syscalls to trace (passthrough)
//	sets:
//	  read_only: [/etc]
//	  hostname: box
//	  identity: {uid: 0, euid: 0, groups: [0]}
//	  redirect_all: {from: /etc/app, to: /srv/app}
//	rules:
//	  - trap: getppid
//	    action: {return: 4242}
//	  - trap: chdir
//	    action: {errno: EROFS}
//	  - trap: socket
//	    args: [{arg: 0, op: eq, value: 2, low32: true}]
//	    action: {errno: EACCES}
//	  - trap: openat
//	    action: {redirect: {from: /etc/app, to: /srv/app}}
//	  - trap: openat
//	    action: {virtual_file: {path: /etc/motd, content: "hi\n"}}
//	  - trap: uname
//	    action: {uname: {nodename: box, release: 2.6.32}}
//	  - trap: getpgid
//	    action: passthrough       # passthrough | kill
//	  - deny: ptrace
//	    errno: EPERM
//	  - kill: kexec_load
package policyfile

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/trap"
)

// Error is a problem at a line of a policy file.
type Error struct {
	File   string
	Line   int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason) }

type parser struct {
	file  string
	lines []int // line of each rule, by position
}

func (ps *parser) fail(n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: ps.file, Line: line, Reason: fmt.Sprintf(format, args...)}
}

// Load reads and checks a policy file. The policy it returns compiles.
func Load(file string) (*trap.Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return Parse(file, data)
}

// Parse reads a policy from data; file names it in errors.
func Parse(file string, data []byte) (*trap.Policy, error) {
	ps := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 0
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: line "), "%d", &line)
		}
		return nil, &Error{File: file, Line: line, Reason: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(doc.Content) == 0 {
		return nil, ps.fail(&doc, "empty policy")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, ps.fail(root, "a policy is a mapping (rules:, sets:, trace:, foreign_arch:)")
	}
	p := trap.NewPolicy()
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i], root.Content[i+1]
		var err error
		switch key.Value {
		case "rules":
			err = ps.rules(p, val)
		case "sets":
			err = ps.sets(p, val)
		case "trace":
			err = ps.trace(p, val)
		case "foreign_arch":
			err = ps.foreign(p, val)
		default:
			err = ps.fail(key, "unknown key %q (rules, sets, trace, foreign_arch)", key.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := p.Compile(trap.CompileOptions{EscapeIP: 1}); err != nil {
		return nil, ps.ruleErrors(err)
	}
	return p, nil
}

// ruleErrors maps the library's rule errors to lines.
func (ps *parser) ruleErrors(err error) error {
	var msgs []string
	line := 0
	var one func(error)
	one = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, sub := range j.Unwrap() {
				one(sub)
			}
			return
		}
		var re *trap.RuleError
		if errors.As(e, &re) && re.Rule-1 < len(ps.lines) {
			l := ps.lines[re.Rule-1]
			if line == 0 {
				line = l
			}
			msgs = append(msgs, fmt.Sprintf("line %d: %v", l, re.Err))
			return
		}
		msgs = append(msgs, e.Error())
	}
	one(err)
	return &Error{File: ps.file, Line: line, Reason: strings.Join(msgs, "; ")}
}

var errnoByName = func() map[string]int {
	m := map[string]int{}
	for e := 1; e < 200; e++ {
		if name := unix.ErrnoName(unix.Errno(e)); name != "" {
			m[name] = e
		}
	}
	return m
}()

func errnoOf(n *yaml.Node) (int, bool) {
	if v, err := strconv.Atoi(n.Value); err == nil {
		return v, true
	}
	e, ok := errnoByName[strings.ToUpper(n.Value)]
	return e, ok
}

func (ps *parser) rules(p *trap.Policy, n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return ps.fail(n, "rules: want a list")
	}
	for _, r := range n.Content {
		if r.Kind != yaml.MappingNode {
			return ps.fail(r, "a rule is a mapping (trap:, deny: or kill:)")
		}
		fields := map[string]*yaml.Node{}
		keys := map[string]*yaml.Node{}
		for i := 0; i+1 < len(r.Content); i += 2 {
			fields[r.Content[i].Value] = r.Content[i+1]
			keys[r.Content[i].Value] = r.Content[i]
		}
		for k, kn := range keys {
			switch k {
			case "trap", "deny", "kill", "action", "errno", "args":
			default:
				return ps.fail(kn, "unknown rule field %q (trap, deny, kill, action, errno, args)", k)
			}
		}
		conds, err := ps.conds(fields["args"])
		if err != nil {
			return err
		}
		ps.lines = append(ps.lines, r.Line)
		switch {
		case fields["trap"] != nil:
			if fields["action"] == nil {
				return ps.fail(r, "trap %s: no action", fields["trap"].Value)
			}
			a, err := ps.action(fields["action"])
			if err != nil {
				return err
			}
			p.Trap(fields["trap"].Value, a, conds...)
		case fields["deny"] != nil:
			en := fields["errno"]
			if en == nil {
				return ps.fail(r, "deny %s: no errno", fields["deny"].Value)
			}
			e, ok := errnoOf(en)
			if !ok {
				return ps.fail(en, "unknown errno %q", en.Value)
			}
			p.Deny(fields["deny"].Value, e, conds...)
		case fields["kill"] != nil:
			p.Kill(fields["kill"].Value, conds...)
		default:
			return ps.fail(r, "a rule needs trap:, deny: or kill:")
		}
	}
	return nil
}

func (ps *parser) conds(n *yaml.Node) ([]trap.Cond, error) {
	if n == nil {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, ps.fail(n, "args: want a list")
	}
	var out []trap.Cond
	for _, c := range n.Content {
		var raw struct {
			Arg   int    `yaml:"arg"`
			Op    string `yaml:"op"`
			Value uint64 `yaml:"value"`
			Mask  uint64 `yaml:"mask"`
			Low32 bool   `yaml:"low32"`
		}
		if err := c.Decode(&raw); err != nil {
			return nil, ps.fail(c, "argument condition: %v", err)
		}
		ref := trap.Arg(raw.Arg)
		if raw.Low32 {
			ref = trap.Arg32(raw.Arg)
		}
		switch raw.Op {
		case "eq":
			out = append(out, ref.Eq(raw.Value))
		case "ne":
			out = append(out, ref.Ne(raw.Value))
		case "masked_eq":
			out = append(out, ref.MaskedEq(raw.Mask, raw.Value))
		case "lt":
			out = append(out, ref.Lt(raw.Value))
		case "le":
			out = append(out, ref.Le(raw.Value))
		case "gt":
			out = append(out, ref.Gt(raw.Value))
		case "ge":
			out = append(out, ref.Ge(raw.Value))
		default:
			return nil, ps.fail(c, "unknown op %q (eq, ne, masked_eq, lt, le, gt, ge)", raw.Op)
		}
	}
	return out, nil
}

func (ps *parser) action(n *yaml.Node) (trap.Action, error) {
	if n.Kind == yaml.ScalarNode {
		switch n.Value {
		case "passthrough":
			return emulate.Passthrough(), nil
		case "kill":
			return emulate.Kill(), nil
		}
		return nil, ps.fail(n, "unknown action %q", n.Value)
	}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return nil, ps.fail(n, "an action is one of: passthrough, kill, {return: N}, {errno: NAME}, {redirect: {from, to}}, {virtual_file: {path, content}}, {deny_writes: [prefixes]}, {uname: {...}}")
	}
	kind, v := n.Content[0], n.Content[1]
	switch kind.Value {
	case "return":
		x, err := strconv.ParseInt(v.Value, 0, 64)
		if err != nil {
			return nil, ps.fail(v, "return: %q is not a number", v.Value)
		}
		return emulate.Return(x), nil
	case "errno":
		e, ok := errnoOf(v)
		if !ok {
			return nil, ps.fail(v, "unknown errno %q", v.Value)
		}
		return emulate.Errno(unix.Errno(e)), nil
	case "redirect":
		var r struct{ From, To string }
		if err := v.Decode(&r); err != nil || r.From == "" || r.To == "" {
			return nil, ps.fail(v, "redirect: want {from: PATH, to: PATH}")
		}
		return emulate.RedirectPath(r.From, r.To), nil
	case "virtual_file":
		var r struct{ Path, Content string }
		if err := v.Decode(&r); err != nil || r.Path == "" {
			return nil, ps.fail(v, "virtual_file: want {path: PATH, content: TEXT}")
		}
		return emulate.VirtualFile(r.Path, []byte(r.Content)), nil
	case "deny_writes":
		var prefixes []string
		if err := v.Decode(&prefixes); err != nil || len(prefixes) == 0 {
			return nil, ps.fail(v, "deny_writes: want a list of path prefixes")
		}
		return emulate.DenyWrites(prefixes...), nil
	case "uname":
		var u struct{ Sysname, Nodename, Release, Version, Machine, Domainname string }
		if err := v.Decode(&u); err != nil {
			return nil, ps.fail(v, "uname: %v", err)
		}
		return emulate.Uname(emulate.UTS(u)), nil
	}
	return nil, ps.fail(kind, "unknown action %q", kind.Value)
}

func (ps *parser) sets(p *trap.Policy, n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return ps.fail(n, "sets: want a mapping")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, v := n.Content[i], n.Content[i+1]
		switch key.Value {
		case "read_only":
			var prefixes []string
			if err := v.Decode(&prefixes); err != nil {
				return ps.fail(v, "read_only: want a list of prefixes")
			}
			p.Apply(emulate.ReadOnly(prefixes...))
		case "hostname":
			p.Apply(emulate.Hostname(v.Value))
		case "redirect_all":
			var r struct{ From, To string }
			if err := v.Decode(&r); err != nil || r.From == "" || r.To == "" {
				return ps.fail(v, "redirect_all: want {from: PATH, to: PATH}")
			}
			p.Apply(emulate.RedirectAll(r.From, r.To))
		case "identity":
			var id struct {
				UID, EUID, GID, EGID, PID, PPID *int
				Groups                          []int
			}
			if err := v.Decode(&id); err != nil {
				return ps.fail(v, "identity: %v", err)
			}
			p.Apply(emulate.Identity(emulate.ID{UID: id.UID, EUID: id.EUID, GID: id.GID, EGID: id.EGID, PID: id.PID, PPID: id.PPID, Groups: id.Groups}))
		default:
			return ps.fail(key, "unknown set %q (read_only, hostname, redirect_all, identity)", key.Value)
		}
	}
	return nil
}

func (ps *parser) trace(p *trap.Policy, n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "all" {
		p.TraceAll()
		return nil
	}
	var names []string
	if err := n.Decode(&names); err != nil {
		return ps.fail(n, "trace: want all or a list of syscalls")
	}
	for _, name := range names {
		p.Trap(name, emulate.Passthrough())
	}
	return nil
}

func (ps *parser) foreign(p *trap.Policy, n *yaml.Node) error {
	switch v := n.Value; {
	case v == "kill":
		p.OnForeignArch(trap.KillProcess)
	case v == "allow":
		p.OnForeignArch(trap.AllowCall)
	case strings.HasPrefix(v, "errno:"):
		e, ok := errnoOf(&yaml.Node{Value: strings.TrimPrefix(v, "errno:")})
		if !ok {
			return ps.fail(n, "unknown errno in %q", v)
		}
		p.OnForeignArch(trap.FailWith(e))
	default:
		return ps.fail(n, "foreign_arch: kill, allow or errno:NAME")
	}
	return nil
}
