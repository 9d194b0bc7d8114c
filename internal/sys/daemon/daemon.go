// Package daemon starts long-lived helper processes that must outlive the
// process that started them (own session, output to a log file, no pipes
// back), finds them again by pid after a restart, and stops them. The node's
// flist module runs one FUSE daemon per mounted flist with it.
package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a daemon started by this process. A goroutine owned by the Proc
// waits for (reaps) it and closes Done; it ends when the daemon exits, not
// when the starter stops caring.
type Proc struct {
	Pid  int
	done chan struct{}
	err  error // set before done closes
}

// Start starts bin with args in a new session, stdout and stderr appended
// to logPath, stdin from /dev/null.
func Start(bin string, args []string, logPath string) (*Proc, error) {
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening daemon log: %w", err)
	}
	defer out.Close() // the child has its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = "/" // pin no directory of the starter
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s %s: %w", bin, strings.Join(args, " "), err)
	}
	p := &Proc{Pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the daemon exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit status once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Alive reports whether pid is a running (not zombie) process whose command
// line contains every one of marks (so that a recycled pid is never taken
// for the daemon).
func Alive(pid int, marks ...string) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	for _, m := range marks {
		found := false
		for _, a := range args {
			if a == m {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// ErrNotStopped is returned when a daemon survived SIGKILL for the whole
// grace period.
var ErrNotStopped = errors.New("daemon did not stop")

// Stop sends SIGTERM to pid (when Alive with marks), waits up to grace for
// it to go, then SIGKILLs it and waits as long again. A pid that is not the
// daemon any more is left alone.
func Stop(pid int, grace time.Duration, marks ...string) error {
	if !Alive(pid, marks...) {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGTERM); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling %d: %w", pid, err)
	}
	if waitGone(pid, grace, marks) {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("killing %d: %w", pid, err)
	}
	if waitGone(pid, grace, marks) {
		return nil
	}
	return fmt.Errorf("pid %d: %w", pid, ErrNotStopped)
}

// Kill sends SIGKILL to pid when it is Alive with marks (tests simulate a
// crashed daemon with it).
func Kill(pid int, marks ...string) error {
	if !Alive(pid, marks...) {
		return nil
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("killing %d: %w", pid, err)
	}
	return nil
}

func waitGone(pid int, d time.Duration, marks []string) bool {
	deadline := time.Now().Add(d)
	for Alive(pid, marks...) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
