// Package proc holds the process calls of an init process: signalling a
// process, its group or everything, exec, the hostname, and whether any
// child is left. cmd/vminit uses it; internal/sys/pid1 has the mounts,
// reaping and power-off.
package proc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Signal sends sig to pid.
func Signal(pid int, sig unix.Signal) error { return unix.Kill(pid, sig) }

// SignalGroup sends sig to the process group pgid.
func SignalGroup(pgid int, sig unix.Signal) error { return unix.Kill(-pgid, sig) }

// SignalAll sends sig to every process but the caller (kill(-1)).
func SignalAll(sig unix.Signal) error { return unix.Kill(-1, sig) }

// Exec replaces the calling process with argv[0].
func Exec(argv, env []string) error {
	if err := unix.Exec(argv[0], argv, env); err != nil {
		return fmt.Errorf("exec %v: %w", argv, err)
	}
	return nil
}

// SetHostname sets the kernel's host name.
func SetHostname(name string) error {
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("setting hostname %q: %w", name, err)
	}
	return nil
}

// NoChildren reaps exited children without blocking and reports whether
// none is left.
func NoChildren() bool {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.ECHILD) {
			return true
		}
		if pid <= 0 {
			return false
		}
	}
}
