// Package prealloc makes fully allocated no-copy-on-write files: the virtual
// disks of VMs. It sets FS_NOCOW_FL (chattr +C) while the file is still empty,
// which btrfs requires, then reserves the blocks with fallocate.
package prealloc

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fsNoCOWFl is FS_NOCOW_FL from linux/fs.h, absent from x/sys/unix.
const fsNoCOWFl = 0x00800000

// Files creates and grows preallocated files.
type Files struct{}

// Allocate creates path if missing (NOCOW, then fallocate to size) or grows an
// existing file to size. It never shrinks. Running out of space gives an error
// wrapping unix.ENOSPC; a new file is removed again on failure.
func (Files) Allocate(path string, size uint64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, os.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR, 0)
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	fail := func(err error) error {
		if created {
			f.Close()
			os.Remove(path)
		}
		return err
	}
	if created {
		if err := setNoCOW(f); err != nil {
			return fail(fmt.Errorf("setting no-copy-on-write on %s: %w", path, err))
		}
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		return fail(fmt.Errorf("allocating %d bytes for %s: %w", size, path, err))
	}
	return nil
}

// setNoCOW sets FS_NOCOW_FL. File systems without the flag (tmpfs, ext4)
// answer ENOTTY or EOPNOTSUPP, which is ignored: only btrfs copies on write.
func setNoCOW(f *os.File) error {
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return err
	}
	flags |= fsNoCOWFl
	if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return err
	}
	return nil
}

// NoCOW reports whether FS_NOCOW_FL is set on path.
func NoCOW(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return false, fmt.Errorf("reading flags of %s: %w", path, err)
	}
	return flags&fsNoCOWFl != 0, nil
}
