package sigsys

import (
	"bytes"
	"errors"

	"golang.org/x/sys/unix"
)

// PathMax is the longest C string String reads, its NUL included (the
// kernel's PATH_MAX).
const PathMax = 4096

// The caller of a trapped call is a thread of this process, so its memory
// is ours: it is read and written with process_vm_readv/writev on our own
// pid, which fail with EFAULT on a bad address instead of crashing.

func (c *Call) argAddr(arg int) (uint64, error) {
	if arg < 0 || arg > 5 {
		return 0, unix.EINVAL
	}
	return c.Args[arg], nil
}

// ReadAt reads len(buf) bytes of the caller's memory at addr. It returns
// the bytes read; fewer than asked, with EFAULT, where a page is bad.
func (c *Call) ReadAt(addr uint64, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	local := []unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	n, err := unix.ProcessVMReadv(unix.Getpid(), local, remote, 0)
	if err != nil {
		return 0, efault(err)
	}
	if n < len(buf) {
		return n, unix.EFAULT
	}
	return n, nil
}

// Read reads n bytes from the buffer argument arg points to.
func (c *Call) Read(arg, n int) ([]byte, error) {
	addr, err := c.argAddr(arg)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	got, err := c.ReadAt(addr, buf)
	return buf[:got], err
}

// WriteAt writes data to the caller's memory at addr, all or nothing
// usable: EFAULT if any of it could not be written.
func (c *Call) WriteAt(addr uint64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	local := []unix.Iovec{{Base: &data[0]}}
	local[0].SetLen(len(data))
	remote := []unix.RemoteIovec{{Base: uintptr(addr), Len: len(data)}}
	n, err := unix.ProcessVMWritev(unix.Getpid(), local, remote, 0)
	if err != nil {
		return efault(err)
	}
	if n < len(data) {
		return unix.EFAULT
	}
	return nil
}

// Write writes data to the buffer argument arg points to.
func (c *Call) Write(arg int, data []byte) error {
	addr, err := c.argAddr(arg)
	if err != nil {
		return err
	}
	return c.WriteAt(addr, data)
}

// StringAt reads the caller's NUL-terminated string at addr: EFAULT for a
// bad address, ENAMETOOLONG past PathMax bytes.
func (c *Call) StringAt(addr uint64) (string, error) {
	if addr == 0 {
		return "", unix.EFAULT
	}
	var out []byte
	buf := make([]byte, PathMax)
	for len(out) < PathMax {
		// Never cross a page in one read: a string may end just before an
		// unmapped page.
		chunk := 4096 - int((addr+uint64(len(out)))&4095)
		if rest := PathMax - len(out); chunk > rest {
			chunk = rest
		}
		n, err := c.ReadAt(addr+uint64(len(out)), buf[:chunk])
		if n == 0 && err != nil {
			return "", unix.EFAULT
		}
		if i := bytes.IndexByte(buf[:n], 0); i >= 0 {
			return string(append(out, buf[:i]...)), nil
		}
		out = append(out, buf[:n]...)
		if err != nil {
			return "", unix.EFAULT
		}
	}
	return "", unix.ENAMETOOLONG
}

// String reads the C string argument arg points to (a path, a name).
func (c *Call) String(arg int) (string, error) {
	addr, err := c.argAddr(arg)
	if err != nil {
		return "", err
	}
	return c.StringAt(addr)
}

func efault(err error) error {
	if errors.Is(err, unix.EFAULT) || errors.Is(err, unix.ESRCH) {
		return unix.EFAULT
	}
	return err
}
