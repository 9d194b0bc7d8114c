package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
)

// ErrNoKernel means a directory holds neither an unpacked kernel tree nor
// a Debian kernel package.
var ErrNoKernel = errors.New("no kernel")

// OpenTree opens an unpacked kernel tree as Open leaves it, without a
// package and without apt: root/lib/modules/VERSION/ (one version) and the
// uncompressed root/vmlinux-VERSION. The image carries such a tree for
// its node's VMs (internal/image.GuestKernelDir); a tree need not hold
// every module, only those its users load. BzImage is set when
// root/boot/vmlinuz-VERSION exists, Deb is empty.
func OpenTree(root string) (*Kernel, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(root, "lib", "modules"))
	if err != nil {
		return nil, fmt.Errorf("kernel tree %s: %w", root, err)
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) != 1 {
		return nil, fmt.Errorf("kernel tree %s: want one directory in lib/modules, found %d", root, len(versions))
	}
	k := &Kernel{Root: root, Version: versions[0]}
	k.Vmlinux = filepath.Join(root, "vmlinux-"+k.Version)
	if err := checkELF(k.Vmlinux); err != nil {
		return nil, fmt.Errorf("kernel tree %s: %w", root, err)
	}
	if bz := filepath.Join(root, "boot", "vmlinuz-"+k.Version); fileExists(bz) {
		k.BzImage = bz
	}
	return k, nil
}

// Find opens the kernel in dir, which is either an unpacked tree
// (OpenTree: the image's guest kernel) or the directory of a Debian kernel
// package (Fetch, unpacked next to the package once: `zos kernel fetch`,
// make deps). It never downloads: a directory with neither is
// ErrNoKernel.
func Find(ctx context.Context, dir string, log *slog.Logger) (*Kernel, error) {
	if fileExists(filepath.Join(dir, "lib", "modules")) {
		return OpenTree(dir)
	}
	deb, err := findDeb(dir)
	if err != nil {
		return nil, err
	}
	if deb == "" {
		return nil, fmt.Errorf("%s holds neither an unpacked kernel (lib/modules/VERSION, vmlinux-VERSION) nor a Debian kernel package (zos kernel fetch --dir DIR): %w", dir, ErrNoKernel)
	}
	return Fetch(ctx, dir, log)
}

// checkELF checks that p is an ELF file (an uncompressed kernel).
func checkELF(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("uncompressed kernel: %w", err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || !bytes.Equal(magic, []byte("\x7fELF")) {
		return fmt.Errorf("%s is not an ELF kernel", p)
	}
	return nil
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
