// Package pid1 holds what the init process of the image does to the
// kernel: mounting the pseudo file systems, reaping orphans, setting the
// clock from the RTC, and powering off or rebooting. internal/node/boot
// calls it; nothing here decides policy.
package pid1

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// mount is one pseudo file system of the early boot.
type mount struct {
	source, target, fstype string
	flags                  uintptr
	data                   string
}

// pseudo are the file systems init mounts, in order.
var pseudo = []mount{
	{"proc", "/proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"sysfs", "/sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
	{"devtmpfs", "/dev", "devtmpfs", unix.MS_NOSUID, "mode=0755"},
	{"devpts", "/dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666"},
	{"tmpfs", "/dev/shm", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"tmpfs", "/run", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	{"tmpfs", "/tmp", "tmpfs", unix.MS_NOSUID | unix.MS_NODEV, "mode=1777"},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
}

// MountPseudo mounts proc, sys, dev (devtmpfs: DEVTMPFS_MOUNT is off in
// Debian's kernel), devpts, /dev/shm, /run, /tmp and cgroup2. A file
// system already mounted (EBUSY) is fine; other errors are collected and
// returned together after trying every mount.
func MountPseudo() error {
	var errs []error
	for _, m := range pseudo {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			errs = append(errs, fmt.Errorf("creating %s: %w", m.target, err))
			continue
		}
		if err := unix.Mount(m.source, m.target, m.fstype, m.flags, m.data); err != nil && !errors.Is(err, unix.EBUSY) {
			errs = append(errs, fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err))
		}
	}
	return errors.Join(errs...)
}

// Exit is a reaped child.
type Exit struct {
	Pid    int
	Status unix.WaitStatus
}

// Reap collects every exited child without blocking. PID 1 calls it on
// SIGCHLD: orphans are re-parented to it. The init process starts its
// children with os.StartProcess and never calls Wait, so reaping with
// wait4(-1) takes no exit status from anyone else.
func Reap() []Exit {
	var out []Exit
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return out
		}
		out = append(out, Exit{Pid: pid, Status: ws})
	}
}

// SetSubreaper makes the process the reaper of its orphaned descendants
// (for tests running init logic not as PID 1).
func SetSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// ClockFromRTC sets the system clock from /dev/rtc0 when the clock is
// before floor (the kernel did not set it), and returns the time set or
// the current time.
func ClockFromRTC(floor time.Time) (time.Time, bool, error) {
	now := time.Now()
	if now.After(floor) {
		return now, false, nil
	}
	f, err := os.Open("/dev/rtc0")
	if err != nil {
		return now, false, fmt.Errorf("opening the RTC: %w", err)
	}
	defer f.Close()
	rt, err := unix.IoctlGetRTCTime(int(f.Fd()))
	if err != nil {
		return now, false, fmt.Errorf("reading the RTC: %w", err)
	}
	t := time.Date(int(rt.Year)+1900, time.Month(rt.Mon+1), int(rt.Mday), int(rt.Hour), int(rt.Min), int(rt.Sec), 0, time.UTC)
	if t.Before(floor) {
		return now, false, fmt.Errorf("the RTC says %s, before %s", t.Format(time.RFC3339), floor.Format(time.RFC3339))
	}
	tv := unix.NsecToTimeval(t.UnixNano())
	if err := unix.Settimeofday(&tv); err != nil {
		return now, false, fmt.Errorf("setting the clock: %w", err)
	}
	return t, true, nil
}

// DisableCtrlAltDel makes Ctrl-Alt-Del send SIGINT to PID 1 instead of an
// immediate reboot, so that init can stop the node first.
func DisableCtrlAltDel() error { return unix.Reboot(unix.LINUX_REBOOT_CMD_CAD_OFF) }

// SetPoweroffCmd tells the kernel what to run for an orderly power off
// (thermal events, some ACPI paths).
func SetPoweroffCmd(cmd string) error {
	return os.WriteFile("/proc/sys/kernel/poweroff_cmd", []byte(cmd), 0o644)
}

// Halt syncs the file systems and powers the machine off (or reboots it).
// It returns only on error.
func Halt(reboot bool) error {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if reboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	return unix.Reboot(cmd)
}

// UnmountAll detaches every mount point in targets, deepest first; errors
// are returned together.
func UnmountAll(targets []string) error {
	var errs []error
	for i := len(targets) - 1; i >= 0; i-- {
		if err := unix.Unmount(targets[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", targets[i], err))
		}
	}
	return errors.Join(errs...)
}

// SignalInit sends sig to PID 1 (zos poweroff, zos reboot).
func SignalInit(sig unix.Signal) error { return unix.Kill(1, sig) }
