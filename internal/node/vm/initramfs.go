// Package vm runs the node's micro-VMs: the guest initramfs (vminit and
// the modules it loads), and the VM manager on top of internal/sys/qemu.
package vm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/cpio"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/node/vm/guest"
)

// InitramfsConfig says what goes into a guest initramfs.
type InitramfsConfig struct {
	// Vminit is the static vminit binary, installed as /init.
	Vminit string
	// ModulesDir is the kernel's lib/modules/VERSION.
	ModulesDir string
	// Modules are wanted module names (kernel.GuestModules when nil).
	Modules []string
	// Fallback are the 9p modules (kernel.FallbackModules when nil).
	Fallback []string
	// Disk are the disk file system modules (kernel.DiskModules when nil).
	Disk []string
}

// Initramfs is a built guest initramfs.
type Initramfs struct {
	// Modules are the module paths in the image, in load order.
	Modules []string
	// Missing are wanted modules found nowhere (neither built in).
	Missing []string
}

// BuildInitramfs writes a deterministic cpio newc archive to w: /init
// (vminit), /dev/console, the mountpoints vminit needs, the modules under
// /lib/modules and their load list at guest.ModulesFile.
func BuildInitramfs(cfg InitramfsConfig, w io.Writer) (*Initramfs, error) {
	if cfg.Vminit == "" || cfg.ModulesDir == "" {
		return nil, fmt.Errorf("guest initramfs: vminit and modules dir are required")
	}
	wanted := cfg.Modules
	if wanted == nil {
		wanted = kernel.GuestModules()
	}
	ix, err := kernel.ReadIndex(cfg.ModulesDir)
	if err != nil {
		return nil, fmt.Errorf("guest initramfs: reading modules: %w", err)
	}
	fallback := cfg.Fallback
	if fallback == nil {
		fallback = kernel.FallbackModules()
	}
	disk := cfg.Disk
	if disk == nil {
		disk = kernel.DiskModules()
	}
	// Each group with its dependencies, read from the modules' own
	// .modinfo (depends=, softdep pre:), what depmod writes to modules.dep:
	// the deb ships none. A module already in an earlier group is not
	// repeated.
	groups := []string{"", guest.Group9P, guest.GroupDisk}
	var lists [][]*kernel.Module
	var missing []string
	for _, wanted := range [][]string{wanted, fallback, disk} {
		order, miss := ix.Resolve(wanted)
		lists = append(lists, order)
		missing = append(missing, miss...)
	}
	a := cpio.NewArchive()
	errs := []error{
		a.HostFile("/init", 0o755, cfg.Vminit),
		a.CharDev("/dev/console", 0o600, 5, 1),
		a.CharDev("/dev/null", 0o666, 1, 3),
	}
	for _, d := range []string{"/proc", "/sys", "/run", "/tmp", "/newroot", "/etc/vminit"} {
		errs = append(errs, a.Dir(d, 0o755))
	}
	res := &Initramfs{Missing: missing}
	var list strings.Builder
	have := map[string]bool{}
	for i, ms := range lists {
		for _, m := range ms {
			if have[m.Name] {
				continue
			}
			have[m.Name] = true
			p := "/lib/modules/" + m.Path
			errs = append(errs, a.HostFile(p, 0o644, filepath.Join(cfg.ModulesDir, m.Path)))
			res.Modules = append(res.Modules, p)
			list.WriteString(p)
			if groups[i] != "" {
				list.WriteString(" " + groups[i])
			}
			list.WriteString("\n")
		}
	}
	errs = append(errs, a.File(guest.ModulesFile, 0o644, []byte(list.String())))
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("guest initramfs: %w", err)
		}
	}
	if err := a.WriteTo(w, os.ReadFile); err != nil {
		return nil, fmt.Errorf("guest initramfs: writing: %w", err)
	}
	return res, nil
}

// WriteInitramfs builds the initramfs into the file out (atomically).
func WriteInitramfs(cfg InitramfsConfig, out string) (*Initramfs, error) {
	var buf bytes.Buffer
	res, err := BuildInitramfs(cfg, &buf)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}
