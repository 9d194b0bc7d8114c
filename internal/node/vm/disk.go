package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// DiskLabel is the btrfs label FormatBlank gives a disk.
const DiskLabel = "zmount"

// ErrImageTooLarge is returned by WriteImage for an image that does not
// fit the disk.
var ErrImageTooLarge = errors.New("image larger than the disk")

// FormatBlank makes a btrfs on the disk file at path when it is blank: no
// file system and no partition table signature (blkid). A disk that has
// one is left alone (mkfs.btrfs is never forced either). It reports
// whether it formatted.
func FormatBlank(path string) (bool, error) { return formatBlank(hostDisks{}, path) }

// formatBlank is FormatBlank over disks.
func formatBlank(disks Disks, path string) (bool, error) {
	sig, err := disks.Probe(path)
	if err != nil {
		return false, fmt.Errorf("probing disk %s: %w", path, err)
	}
	if !sig.Empty() {
		return false, nil
	}
	if err := disks.Mkfs(path, DiskLabel); err != nil {
		return false, err
	}
	return true, nil
}

// WriteImage writes a raw image of size bytes from src at the start of
// the disk file disk, which keeps its size. An image larger than the disk
// is refused before anything is written (ErrImageTooLarge); src must hold
// exactly size bytes.
func WriteImage(src io.Reader, size int64, disk string) error {
	st, err := os.Stat(disk)
	if err != nil {
		return fmt.Errorf("writing image to disk %s: %w", disk, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("writing image to disk %s: not a regular file", disk)
	}
	if size < 0 || size > st.Size() {
		return fmt.Errorf("writing image to disk %s: %w: image %d bytes, disk %d bytes", disk, ErrImageTooLarge, size, st.Size())
	}
	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("writing image to disk %s: %w", disk, err)
	}
	n, err := io.Copy(f, io.LimitReader(src, size))
	if err == nil && n < size {
		err = fmt.Errorf("image ended after %d of %d bytes", n, size)
	}
	if err == nil {
		var one [1]byte
		if k, _ := io.ReadFull(src, one[:]); k > 0 {
			err = fmt.Errorf("image is longer than its size %d", size)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing image to disk %s: %w", disk, err)
	}
	return nil
}
