// Package loop attaches regular files as loop block devices and detaches
// them, with the loop ioctls (what losetup does, without a process per call).
// Hosted-mode nodes use it to turn sparse files into disks.
package loop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Losetup attaches and detaches loop devices. Sys is the sysfs root ("/sys"
// when empty), Dev the device directory ("/dev" when empty).
type Losetup struct {
	Sys string
	Dev string
}

func (l Losetup) sys() string {
	if l.Sys == "" {
		return "/sys"
	}
	return l.Sys
}

func (l Losetup) dev() string {
	if l.Dev == "" {
		return "/dev"
	}
	return l.Dev
}

// Attach binds file to a free loop device and returns its path. A file
// already attached is not attached twice: its device is returned.
func (l Losetup) Attach(file string) (string, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return "", fmt.Errorf("attaching %s: %w", file, err)
	}
	if dev, ok := l.Find(abs); ok {
		return dev, nil
	}
	f, err := os.OpenFile(abs, os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("attaching %s: %w", file, err)
	}
	defer f.Close()
	ctl, err := os.OpenFile(filepath.Join(l.dev(), "loop-control"), os.O_RDWR, 0)
	if err != nil {
		return "", fmt.Errorf("attaching %s: %w", file, err)
	}
	defer ctl.Close()
	// Another process may take the free device between the two calls:
	// LOOP_CONFIGURE then says EBUSY and we ask again.
	for attempt := 0; attempt < 20; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", fmt.Errorf("attaching %s: finding a free loop device: %w", file, err)
		}
		dev := filepath.Join(l.dev(), fmt.Sprintf("loop%d", n))
		lf, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			return "", fmt.Errorf("attaching %s: %w", file, err)
		}
		cfg := unix.LoopConfig{Fd: uint32(f.Fd())}
		copy(cfg.Info.File_name[:], abs)
		err = unix.IoctlLoopConfigure(int(lf.Fd()), &cfg)
		lf.Close()
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("attaching %s to %s: %w", file, dev, err)
		}
		return dev, nil
	}
	return "", fmt.Errorf("attaching %s: every free loop device was taken before we could use it", file)
}

// Find returns the loop device backed by file, if any.
func (l Losetup) Find(file string) (string, bool) {
	backs, _ := filepath.Glob(filepath.Join(l.sys(), "block", "loop*", "loop", "backing_file"))
	for _, b := range backs {
		v, err := os.ReadFile(b)
		if err == nil && strings.TrimSpace(string(v)) == file {
			name := filepath.Base(filepath.Dir(filepath.Dir(b)))
			return filepath.Join(l.dev(), name), true
		}
	}
	return "", false
}

// Detach releases a loop device. A device still in use (mounted) is released
// by the kernel once the last user closes it (autoclear).
func (l Losetup) Detach(dev string) error {
	f, err := os.OpenFile(dev, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("detaching %s: %w", dev, err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
		return fmt.Errorf("detaching %s: %w", dev, err)
	}
	return nil
}
