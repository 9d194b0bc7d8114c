// Package switchroot makes a mounted root file system "/" from an
// initramfs: the pseudo file systems are moved under it, then MS_MOVE and
// chroot (rootfs cannot be pivot_root'ed). cmd/vminit, the init of the
// node's micro-VMs, uses it once before running the entrypoint.
package switchroot

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Carried are the mounts moved into the new root, with their submounts
// (/dev/pts, /dev/shm). One whose target directory is missing in the root
// is detached instead.
var Carried = []string{"/dev", "/proc", "/sys", "/run", "/tmp"}

// Into moves the Carried mounts under root and makes root "/".
func Into(root string) error {
	for _, m := range Carried {
		target := filepath.Join(root, m)
		if st, err := os.Stat(target); err != nil || !st.IsDir() {
			unix.Unmount(m, unix.MNT_DETACH)
			continue
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s into the root: %w", m, err)
		}
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering %s: %w", root, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving %s to /: %w", root, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into the root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	return nil
}
