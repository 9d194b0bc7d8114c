// Package kernel gets the guest and node kernel from Debian's
// linux-image-amd64 package: it downloads the package with apt-get into a
// cache directory, unpacks it with dpkg, extracts the uncompressed vmlinux
// from the bzImage (for PVH boots) and reads the modules' dependencies so
// that they can be loaded in order without modprobe. The image builder
// (internal/image) and the VM tests use it.
package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// MetaPackage is the Debian package that depends on the current kernel.
const MetaPackage = "linux-image-amd64"

// Kernel is an unpacked Debian kernel package.
type Kernel struct {
	// Version is the module directory name, e.g. 6.1.0-56-amd64.
	Version string
	// Deb is the package file.
	Deb string
	// Root is where the package is unpacked (boot/, lib/modules/).
	Root string
	// BzImage is the compressed kernel (boot/vmlinuz-VERSION).
	BzImage string
	// Vmlinux is the uncompressed ELF kernel extracted from BzImage, for
	// PVH boots (QEMU -M microvm -kernel vmlinux).
	Vmlinux string
}

// ModulesDir is lib/modules/VERSION under Root.
func (k *Kernel) ModulesDir() string { return filepath.Join(k.Root, "lib", "modules", k.Version) }

// Fetch makes sure dir holds the kernel package and its unpacked tree and
// returns them. It is idempotent: a package already in dir is used without
// asking apt (so tests run offline once `make deps` fetched it); otherwise
// the package linux-image-amd64 depends on is downloaded with apt-get.
func Fetch(ctx context.Context, dir string, log *slog.Logger) (*Kernel, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating kernel cache %s: %w", dir, err)
	}
	deb, err := findDeb(dir)
	if err != nil {
		return nil, err
	}
	if deb == "" {
		pkg, err := resolvePackage(ctx)
		if err != nil {
			return nil, err
		}
		log.Info("kernel_download", "package", pkg, "dir", dir)
		if _, err := run(ctx, dir, "apt-get", "download", "-q", pkg); err != nil {
			return nil, err
		}
		if deb, err = findDeb(dir); err != nil {
			return nil, err
		}
		if deb == "" {
			return nil, fmt.Errorf("apt-get download %s left no package in %s", pkg, dir)
		}
	}
	return Open(ctx, deb)
}

// Open unpacks deb next to itself (once) and extracts vmlinux.
func Open(ctx context.Context, deb string) (*Kernel, error) {
	root := strings.TrimSuffix(deb, ".deb")
	done := filepath.Join(root, ".unpacked")
	if _, err := os.Stat(done); err != nil {
		tmp := root + ".tmp"
		os.RemoveAll(tmp)
		if _, err := run(ctx, "", "dpkg-deb", "-x", deb, tmp); err != nil {
			return nil, err
		}
		os.RemoveAll(root)
		if err := os.Rename(tmp, root); err != nil {
			return nil, fmt.Errorf("moving unpacked kernel: %w", err)
		}
		if err := os.WriteFile(done, nil, 0o644); err != nil {
			return nil, err
		}
	}
	mods, err := filepath.Glob(filepath.Join(root, "lib", "modules", "*"))
	if err != nil || len(mods) != 1 {
		return nil, fmt.Errorf("want one module directory in %s, found %d", root, len(mods))
	}
	k := &Kernel{Deb: deb, Root: root, Version: filepath.Base(mods[0])}
	k.BzImage = filepath.Join(root, "boot", "vmlinuz-"+k.Version)
	k.Vmlinux = filepath.Join(root, "vmlinux-"+k.Version)
	if _, err := os.Stat(k.Vmlinux); err != nil {
		if err := ExtractVmlinux(ctx, k.BzImage, k.Vmlinux); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// findDeb returns the newest linux-image-*-amd64 package in dir, or "".
func findDeb(dir string) (string, error) {
	debs, err := filepath.Glob(filepath.Join(dir, "linux-image-*-amd64_*.deb"))
	if err != nil {
		return "", err
	}
	var keep []string
	for _, d := range debs {
		if !strings.Contains(filepath.Base(d), "-dbg") && !strings.HasPrefix(filepath.Base(d), "linux-image-amd64_") {
			keep = append(keep, d)
		}
	}
	if len(keep) == 0 {
		return "", nil
	}
	sort.Strings(keep)
	return keep[len(keep)-1], nil
}

// resolvePackage asks apt which versioned package linux-image-amd64
// depends on.
func resolvePackage(ctx context.Context) (string, error) {
	out, err := run(ctx, "", "apt-cache", "depends", MetaPackage)
	if err != nil {
		return "", err
	}
	if p := parseDepends(string(out)); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("apt-cache depends %s: no linux-image dependency (run apt-get update)", MetaPackage)
}

// parseDepends finds the linux-image-* dependency in apt-cache output.
func parseDepends(out string) string {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			return f[1]
		}
	}
	return ""
}

// xzMagic starts the xz stream inside a Debian bzImage.
var xzMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}

// ExtractVmlinux writes the uncompressed kernel found in bzImage to out:
// the xz payload from its magic, decompressed with xz(1).
func ExtractVmlinux(ctx context.Context, bzImage, out string) error {
	b, err := os.ReadFile(bzImage)
	if err != nil {
		return fmt.Errorf("reading kernel: %w", err)
	}
	i := bytes.Index(b, xzMagic)
	if i < 0 {
		return fmt.Errorf("%s: no xz payload", bzImage)
	}
	cmd := exec.CommandContext(ctx, "xz", "-dc", "--single-stream")
	cmd.Stdin = bytes.NewReader(b[i:])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xz -dc --single-stream (payload of %s): %w: %s", bzImage, err, stderr.String())
	}
	if !bytes.HasPrefix(stdout.Bytes(), []byte("\x7fELF")) {
		return errors.New("the xz payload of the kernel is not an ELF file")
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, stdout.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing vmlinux: %w", err)
	}
	return os.Rename(tmp, out)
}

func run(ctx context.Context, dir string, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
