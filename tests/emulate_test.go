package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/emulate"
	"github.com/trapemu/trapemu/internal/childtest"
	"github.com/trapemu/trapemu/trap"
)

// tree makes a temporary directory tree: files maps relative paths to
// contents.
func tree(files map[string]string) (string, error) {
	dir, err := os.MkdirTemp("", "trapemu-test")
	if err != nil {
		return "", err
	}
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func expectErrno(what string, err error, want syscall.Errno) error {
	if !errors.Is(err, want) {
		return fmt.Errorf("%s: got %v, want %v", what, err, want)
	}
	return nil
}

func expectString(what, got, want string) error {
	if got != want {
		return fmt.Errorf("%s = %q, want %q", what, got, want)
	}
	return nil
}

func init() {
	childtest.Register("redirect-path", func() error {
		root, err := tree(map[string]string{"etc/app/app.conf": "fake", "srv/app/app.conf": "real", "srv/app/sub/x": "x"})
		if err != nil {
			return err
		}
		from, to := filepath.Join(root, "etc/app"), filepath.Join(root, "srv/app")
		if err := os.WriteFile(filepath.Join(from, "only-in-from"), nil, 0o644); err != nil {
			return err
		}
		p := trap.NewPolicy().Apply(emulate.RedirectAll(from, to))
		if _, err := install(p); err != nil {
			return err
		}
		// Go code and C code both see the target tree.
		b, err := os.ReadFile(filepath.Join(from, "app.conf"))
		if err := expectString("Go read", string(b), "real"); err != nil {
			return err
		}
		s, err := CReadFile(filepath.Join(from, "app.conf"))
		if err != nil {
			return err
		}
		if err := expectString("C read", s, "real"); err != nil {
			return err
		}
		// The stat family, access, and a missing file as the kernel says it.
		if fi, err := os.Stat(filepath.Join(from, "sub")); err != nil || !fi.IsDir() {
			return fmt.Errorf("stat sub: %v", err)
		}
		if err := unix.Access(filepath.Join(from, "sub/x"), unix.R_OK); err != nil {
			return fmt.Errorf("access: %v", err)
		}
		if _, err := os.Stat(filepath.Join(from, "only-in-from")); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("only-in-from: %v (it must not exist in the target)", err)
		}
		// Writes land in the target: create, rename (both paths), unlink, mkdir.
		if err := os.WriteFile(filepath.Join(from, "new"), []byte("n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(from, "new"), filepath.Join(from, "renamed")); err != nil {
			return err
		}
		if err := os.Mkdir(filepath.Join(from, "d"), 0o755); err != nil {
			return err
		}
		for _, rel := range []string{"srv/app/renamed", "srv/app/d"} {
			if _, err := os.Lstat(filepath.Join(root, rel)); err != nil {
				return fmt.Errorf("%s not created in the target: %v", rel, err)
			}
		}
		if err := os.Remove(filepath.Join(from, "renamed")); err != nil {
			return err
		}
		// Paths elsewhere are untouched; a sibling with a common prefix too.
		if err := os.WriteFile(from+"x", []byte("sibling"), 0o644); err != nil {
			return err
		}
		if _, err := os.Stat(to + "x"); !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sibling %sx was redirected", from)
		}
		// Relative paths: chdir is redirected, so "." is the target.
		if err := os.Chdir(from); err != nil {
			return err
		}
		if b, err := os.ReadFile("sub/x"); err != nil || string(b) != "x" {
			return fmt.Errorf("relative read: %q %v", b, err)
		}
		cwd, _ := os.Getwd()
		if cwd != to {
			return fmt.Errorf("cwd %q, want %q", cwd, to)
		}
		// Relative paths that climb into the redirected tree.
		if err := os.Chdir(root); err != nil {
			return err
		}
		if b, err := os.ReadFile("srv/../etc/app/app.conf"); err != nil || string(b) != "real" {
			return fmt.Errorf("relative ../ read: %q %v", b, err)
		}
		// A dirfd opened on the redirected path points into the target.
		dfd, err := unix.Open(filepath.Join(from, "sub"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		fd, err := unix.Openat(dfd, "x", unix.O_RDONLY, 0)
		if err != nil {
			return fmt.Errorf("openat(dirfd, x): %v", err)
		}
		unix.Close(fd)
		// Too long after rewriting: ENAMETOOLONG; a bad pointer: EFAULT.
		long := filepath.Join(from, strings.Repeat("a/", 2040))
		if _, err := os.Stat(long); err != nil && !errors.Is(err, unix.ENAMETOOLONG) {
			return fmt.Errorf("long path: %v", err)
		}
		_, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, 1, 0, 0, 0, 0)
		return expectErrno("openat(bad pointer)", e, unix.EFAULT)
	})

	childtest.Register("redirect-name-too-long", func() error {
		root, err := tree(map[string]string{"a/f": "x"})
		if err != nil {
			return err
		}
		to := "/" + strings.Repeat("t", 200) + "/" + strings.Repeat("u", 200)
		p := trap.NewPolicy().Trap("openat", emulate.RedirectPath(filepath.Join(root, "a"), to))
		if _, err := install(p); err != nil {
			return err
		}
		// Short enough before, too long after the rewrite.
		name := filepath.Join(root, "a", strings.Repeat("n/", (4096-len(root)-3)/2-10))
		_, err = os.Open(name)
		if err := expectErrno("open of a path too long once rewritten", err, unix.ENAMETOOLONG); err != nil {
			return err
		}
		// The same without the redirect: the kernel's ENOENT.
		_, err = os.Open(strings.Replace(name, "/a/", "/b/", 1))
		return expectErrno("open of the same path elsewhere", err, unix.ENOENT)
	})

	childtest.Register("virtual-file", func() error {
		root, err := tree(map[string]string{"real.conf": "on disk"})
		if err != nil {
			return err
		}
		virt := filepath.Join(root, "legacy.conf") // not on disk
		p := trap.NewPolicy().Apply(emulate.VirtualFileEverywhere(virt, []byte("mode=virtual\n")))
		if _, err := install(p); err != nil {
			return err
		}
		b, err := os.ReadFile(virt)
		if err := expectString("Go read", string(b), "mode=virtual\n"); err != nil || b == nil {
			return fmt.Errorf("%v %v", err, err)
		}
		s, err := CReadFile(virt)
		if err != nil {
			return err
		}
		if err := expectString("C read", s, "mode=virtual\n"); err != nil {
			return err
		}
		// Each open is a fresh descriptor at offset 0, read-only.
		f, err := os.Open(virt)
		if err != nil {
			return err
		}
		fi, _ := f.Stat()
		if fi.Size() != int64(len("mode=virtual\n")) {
			return fmt.Errorf("fstat size %d", fi.Size())
		}
		if _, err := f.Write([]byte("x")); !errors.Is(err, unix.EBADF) {
			return fmt.Errorf("write to the virtual file: %v, want EBADF (read-only descriptor)", err)
		}
		f.Close()
		if _, err := os.OpenFile(virt, os.O_RDWR, 0); !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("open for write: %v, want EROFS", err)
		}
		if _, err := os.OpenFile(virt, os.O_CREATE|os.O_EXCL|os.O_RDONLY, 0o644); !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("O_EXCL: %v, want EEXIST", err)
		}
		// Other files are real.
		if b, _ := os.ReadFile(filepath.Join(root, "real.conf")); string(b) != "on disk" {
			return fmt.Errorf("real file reads %q", b)
		}
		return nil
	})

	childtest.Register("hostname-identity", func() error {
		p := trap.NewPolicy().Apply(
			emulate.Hostname("legacy-box"),
			emulate.Identity(emulate.ID{UID: emulate.Int(0), EUID: emulate.Int(0), PID: emulate.Int(4000), Groups: []int{10, 20}}),
		)
		if _, err := install(p); err != nil {
			return err
		}
		h, err := os.Hostname()
		if err := expectString("os.Hostname", h, "legacy-box"); err != nil {
			return err
		}
		ch, _ := CGethostname()
		if err := expectString("gethostname(3)", ch, "legacy-box"); err != nil {
			return err
		}
		if syscall.Getuid() != 0 || syscall.Geteuid() != 0 || syscall.Getpid() != 4000 {
			return fmt.Errorf("Go sees uid %d euid %d pid %d", syscall.Getuid(), syscall.Geteuid(), syscall.Getpid())
		}
		gs, err := os.Getgroups()
		if err != nil || fmt.Sprint(gs) != "[10 20]" {
			return fmt.Errorf("os.Getgroups = %v %v", gs, err)
		}
		ids := CIDs()
		realSUID := int64(os.Getuid()) // faked too: 0
		_ = realSUID
		r, e, s := unix.Getresuid()
		if ids[0] != 0 || ids[1] != 0 || ids[2] != 0 || ids[3] != 0 || ids[5] != 2 || ids[6] != 10 || ids[7] != 4000 {
			return fmt.Errorf("C sees %v", ids)
		}
		if r != 0 || e != 0 || int64(s) != ids[4] {
			return fmt.Errorf("getresuid %d %d %d", r, e, s)
		}
		// getgroups(1, ...) with two groups: EINVAL, as the kernel says.
		buf := make([]uint32, 1)
		_, _, errno := syscall.RawSyscall(unix.SYS_GETGROUPS, 1, uintptr(unsafePtr(buf)), 0)
		return expectErrno("getgroups(1)", errno, unix.EINVAL)
	})

	childtest.Register("read-only", func() error {
		root, err := tree(map[string]string{"ro/file": "keep", "ro/sub/f": "keep", "rw/file": "w"})
		if err != nil {
			return err
		}
		ro := filepath.Join(root, "ro")
		p := trap.NewPolicy().Apply(emulate.ReadOnly(ro))
		if _, err := install(p); err != nil {
			return err
		}
		f := filepath.Join(ro, "file")
		checks := []struct {
			what string
			err  error
		}{
			{"WriteFile", os.WriteFile(f, []byte("x"), 0o644)},
			{"create", os.WriteFile(filepath.Join(ro, "new"), nil, 0o644)},
			{"append", func() error {
				_, err := os.OpenFile(f, os.O_APPEND|os.O_RDONLY, 0)
				return err
			}()},
			{"Remove", os.Remove(f)},
			{"Rename out", os.Rename(f, filepath.Join(root, "rw/stolen"))},
			{"Rename in", os.Rename(filepath.Join(root, "rw/file"), filepath.Join(ro, "planted"))},
			{"Mkdir", os.Mkdir(filepath.Join(ro, "d"), 0o755)},
			{"RemoveAll sub", os.Remove(filepath.Join(ro, "sub/f"))},
			{"Chmod", os.Chmod(f, 0o600)},
			{"Chown", os.Chown(f, 0, 0)},
			{"Truncate", os.Truncate(f, 0)},
			{"Symlink", os.Symlink("/etc/passwd", filepath.Join(ro, "link"))},
			{"Link", os.Link(filepath.Join(root, "rw/file"), filepath.Join(ro, "hard"))},
			{"C write", CWriteFile(filepath.Join(ro, "c"), "x")},
		}
		for _, c := range checks {
			if err := expectErrno(c.what, c.err, unix.EROFS); err != nil {
				return err
			}
		}
		// Relative paths are caught too.
		if err := os.Chdir(ro); err != nil {
			return err
		}
		if err := expectErrno("relative create", os.WriteFile("rel", nil, 0o644), unix.EROFS); err != nil {
			return err
		}
		if err := expectErrno("relative ../ro", os.WriteFile("../ro/rel", nil, 0o644), unix.EROFS); err != nil {
			return err
		}
		// Reads work, and writes elsewhere work.
		if b, err := os.ReadFile(f); err != nil || string(b) != "keep" {
			return fmt.Errorf("read: %q %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(root, "rw/new"), []byte("ok"), 0o644); err != nil {
			return fmt.Errorf("write outside: %v", err)
		}
		return nil
	})

	childtest.Register("composition", func() error {
		root, err := tree(map[string]string{"etc/app/a.conf": "old", "srv/app/a.conf": "new"})
		if err != nil {
			return err
		}
		from, to := filepath.Join(root, "etc/app"), filepath.Join(root, "srv/app")
		virt := filepath.Join(from, "virtual.conf")
		p := trap.NewPolicy()
		// First match wins: the virtual file, then read-only, then redirect.
		p.Trap("openat", emulate.VirtualFile(virt, []byte("v")))
		p.Trap("openat", emulate.DenyWrites(to))
		p.Trap("openat", emulate.RedirectPath(from, to))
		rt, err := install(p)
		if err != nil {
			return err
		}
		if b, _ := os.ReadFile(virt); string(b) != "v" {
			return fmt.Errorf("virtual: %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(from, "a.conf")); string(b) != "new" {
			return fmt.Errorf("redirected: %q", b)
		}
		if err := expectErrno("write to the target", os.WriteFile(filepath.Join(to, "a.conf"), nil, 0o644), unix.EROFS); err != nil {
			return err
		}
		// DenyWrites sees the path as written: a write through the
		// redirect is not caught by a rule placed before the redirect.
		if err := os.WriteFile(filepath.Join(from, "w"), []byte("w"), 0o644); err != nil {
			return fmt.Errorf("write through the redirect: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(to, "w")); string(b) != "w" {
			return fmt.Errorf("write through the redirect landed elsewhere")
		}
		st := rt.Stats()
		if st.Rules[0].Hits == 0 || st.Rules[0].Hits != st.Rules[2].Hits {
			return fmt.Errorf("chained rules share the first rule's counter: %+v", st.Rules)
		}
		return nil
	})
}

func TestRedirectPath(t *testing.T)        { childtest.MustRun(t, "redirect-path") }
func TestRedirectNameTooLong(t *testing.T) { childtest.MustRun(t, "redirect-name-too-long") }
func TestVirtualFile(t *testing.T)         { childtest.MustRun(t, "virtual-file") }
func TestHostnameIdentity(t *testing.T)    { childtest.MustRun(t, "hostname-identity") }
func TestReadOnly(t *testing.T)            { childtest.MustRun(t, "read-only") }
func TestComposition(t *testing.T)         { childtest.MustRun(t, "composition") }

var atFDCWD = func() uintptr { v := unix.AT_FDCWD; return uintptr(v) }()
