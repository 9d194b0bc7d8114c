package vm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/sys/beneath"
)

// Bounds of a kernel-mode VM's boot files.
const (
	MaxKernelSize int64 = 64 << 20
	MaxInitrdSize int64 = 256 << 20
)

// ErrBootFile wraps every refusal of a kernel-mode kernel or initrd.
var ErrBootFile = errors.New("boot file refused")

// Names of the copies in the boot directory.
const (
	bootKernel = "vmlinuz"
	bootInitrd = "initrd.img"
)

// CopyBootFiles prepares a kernel-mode VM's boot: kernel and initrd (""
// for none) are paths inside src, the flist's read-only layer (never the
// writable overlay the guest sees as its root), copied into dir, a
// directory of the node the guest cannot reach. Each is opened below src
// without following any symbolic link (a link anywhere on the path, a
// path leaving src or crossing a mount is refused), must be a regular
// file and at most MaxKernelSize or MaxInitrdSize bytes. It returns the
// Boot naming the copies: QEMU reads only those, so what the guest later
// writes to its own /boot never reaches QEMU (a symlink to a host file
// there is just a file of the guest). A refusal wraps ErrBootFile and
// leaves dir's previous copies in place.
func CopyBootFiles(src, kernel, initrd, dir string) (Boot, error) {
	if !filepath.IsAbs(src) || !filepath.IsAbs(dir) {
		return Boot{}, fmt.Errorf("boot files: source %q and directory %q must be absolute", src, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Boot{}, fmt.Errorf("creating boot directory %s: %w", dir, err)
	}
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
		return Boot{}, fmt.Errorf("boot directory %s: not a directory", dir)
	}
	b := Boot{Mode: BootKernel, Kernel: filepath.Join(dir, bootKernel)}
	if err := copyBootFile(src, kernel, b.Kernel, MaxKernelSize); err != nil {
		return Boot{}, fmt.Errorf("kernel %s: %w", kernel, err)
	}
	initrdCopy := filepath.Join(dir, bootInitrd)
	if initrd == "" {
		if err := os.Remove(initrdCopy); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Boot{}, fmt.Errorf("removing the old initrd: %w", err)
		}
		return b, nil
	}
	if err := copyBootFile(src, initrd, initrdCopy, MaxInitrdSize); err != nil {
		return Boot{}, fmt.Errorf("initrd %s: %w", initrd, err)
	}
	b.Initrd = initrdCopy
	return b, nil
}

// copyBootFile copies name under src to dst (a temporary file renamed
// over it), refusing more than max bytes.
func copyBootFile(src, name, dst string, max int64) error {
	f, err := beneath.OpenRegular(src, name)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBootFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() > max {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrBootFile, st.Size(), max)
	}
	tmp, err := atomicfile.Create(dst, 0o600)
	if err != nil {
		return err
	}
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(f, max+1))
	if err == nil && n > max {
		err = fmt.Errorf("%w: grew past %d bytes while copied", ErrBootFile, max)
	}
	if err != nil {
		return fmt.Errorf("copying to %s: %w", dst, err)
	}
	return tmp.Commit()
}
