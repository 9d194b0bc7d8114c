package mount

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Overlay mounts an overlay on target: lower read-only, changes in upper,
// work as overlayfs's scratch directory (same file system as upper). The
// node's flist module uses it for workload roots over a read-only flist.
func (Mounter) Overlay(lower, upper, work, target string) error {
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
	}
	for _, p := range []string{lower, upper, work} {
		if strings.ContainsAny(p, ",:") {
			return fmt.Errorf("overlay path %q: commas and colons are not allowed", p)
		}
	}
	data := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return fmt.Errorf("mounting overlay on %s (%s): %w", target, data, err)
	}
	return nil
}
