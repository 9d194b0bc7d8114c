// Package loop attaches regular files as loop block devices and detaches
// them, through losetup. Hosted-mode nodes use it to turn sparse files into
// disks.
package loop

import (
	"fmt"
	"os/exec"
	"strings"
)

// Losetup drives util-linux losetup.
type Losetup struct{}

// Attach binds file to the first free loop device and returns its path. A
// file already attached is not attached twice: its device is returned.
func (Losetup) Attach(file string) (string, error) {
	out, err := run("losetup", "--find", "--show", "--nooverlap", file)
	if err != nil {
		return "", fmt.Errorf("attaching %s: %w", file, err)
	}
	return strings.TrimSpace(out), nil
}

// Detach releases a loop device. A device still mounted is released by the
// kernel when it is unmounted (autoclear).
func (Losetup) Detach(dev string) error {
	if _, err := run("losetup", "--detach", dev); err != nil {
		return fmt.Errorf("detaching %s: %w", dev, err)
	}
	return nil
}

func run(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("running %s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}
