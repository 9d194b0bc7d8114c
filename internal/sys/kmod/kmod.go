// Package kmod loads kernel modules with finit_module(2), in the order the
// image builder wrote, without modprobe. zos init uses it.
package kmod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Load loads one module file. A module already loaded (EEXIST) is not an
// error.
func Load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening module %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("loading module %s: %w", filepath.Base(path), err)
	}
	return nil
}
