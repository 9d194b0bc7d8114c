// Package facts reads what a node tells about its machine: the DMI
// (SMBIOS) facts of its firmware, whether it runs under a hypervisor and
// which one. It reads files below a root (sysfs and procfs, "/" on a node,
// a temporary tree in tests) and never execs a tool; the node API
// (zos.system.dmi, zos.system.hypervisor) and the node's registration
// (virtualized) use it.
package facts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Reader reads the facts of the machine whose /sys and /proc are below
// Root.
type Reader struct {
	// Root is where /sys and /proc are found; "" means "/".
	Root string
}

// ErrNoDMI is returned when the machine exposes no DMI facts (no SMBIOS
// table and no /sys/class/dmi/id: a container, some sandboxes, ARM boards).
var ErrNoDMI = errors.New("this machine exposes no DMI facts")

func (r Reader) path(p string) string {
	root := r.Root
	if root == "" {
		root = "/"
	}
	return filepath.Join(root, p)
}

// readTrim reads a small text file, trimmed; "" when it is absent or
// unreadable (sysfs keeps some DMI files for root only).
func (r Reader) readTrim(p string) string {
	b, err := os.ReadFile(r.path(p))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
