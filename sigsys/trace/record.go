// Package trace records trapped calls — thread, syscall, decoded
// arguments, result, call site, time and duration — from the C handler's
// lock-free ring, and writes them to sinks: logrus, strace-style text, JSON
// lines, and a summary table like strace -c.
package trace

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/trapemu/trapemu/arch"
	"github.com/trapemu/trapemu/cgo"
)

// Record is one traced call.
type Record struct {
	// Start is when the handler began answering (CLOCK_MONOTONIC), and
	// Duration how long the answer took (the real call, for Passthrough).
	Start    time.Duration
	Duration time.Duration
	TID      int
	PID      int
	Nr       int
	Name     string
	Args     [6]uint64
	// Ret is the raw return value; Errno is set when it is -errno.
	Ret   int64
	Errno syscall.Errno
	// CallSite is the address just after the syscall instruction; Frames
	// are return addresses above it, when captured.
	CallSite uint64
	Frames   []uint64
	// Paths are the call's path arguments as they were at the call.
	Paths []string
}

// Failed reports whether the call failed.
func (r *Record) Failed() bool { return r.Errno != 0 }

func fromRaw(a *arch.Info, raw *cgo.TraceRecord) Record {
	r := Record{
		Start:    time.Duration(raw.Start),
		Duration: time.Duration(raw.End - raw.Start),
		TID:      raw.TID,
		PID:      raw.PID,
		Nr:       raw.Nr,
		Name:     a.SyscallName(raw.Nr),
		Args:     raw.Args,
		Ret:      raw.Ret,
		CallSite: raw.IP,
		Frames:   raw.Frames,
		Paths:    raw.Strings,
	}
	if raw.Ret < 0 && raw.Ret >= -4095 {
		r.Errno = unix.Errno(-raw.Ret)
	}
	return r
}

// Decode reads a raw record, as a process traced by trapemu trace sends it.
func Decode(b []byte) (Record, error) {
	raw, _, err := cgo.DecodeTraceRecord(b)
	if err != nil {
		return Record{}, err
	}
	return fromRaw(arch.Native(), &raw), nil
}

// RawSize is the size of a raw record.
const RawSize = cgo.TraceRecordSize
