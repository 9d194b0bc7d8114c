package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/zos-go/zos/internal/wait"
)

// RotateConsoles cuts every console log larger than Config.LogMax to its
// last Config.LogKeep bytes, in place. Monitor calls it every
// Config.LogCheck.
func (m *Manager) RotateConsoles() {
	m.mu.Lock()
	var paths []string
	for _, mc := range m.vms {
		paths = append(paths, filepath.Join(mc.dir, "console.log"))
	}
	m.mu.Unlock()
	for _, p := range paths {
		cut, err := trimLog(p, m.cfg.LogMax, m.cfg.LogKeep)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("console_rotate", "path", p, "err", err)
		}
		if cut {
			m.log.Debug("console_rotated", "path", p)
		}
	}
}

// rotateLoop runs RotateConsoles every LogCheck until ctx ends.
func (m *Manager) rotateLoop(ctx context.Context) {
	wait.Every(ctx, m.cfg.LogCheck, m.RotateConsoles)
}

// trimLog keeps the last keep bytes of the file at path when it is larger
// than max: they are copied to its start and the file is truncated. QEMU
// opens the console with append=on, so its next writes land at the new
// end. What QEMU appends while the copy runs is copied too; only what it
// writes between the last read and the truncation is lost.
func trimLog(path string, max, keep int64) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if st.Size() <= max {
		return false, nil
	}
	src, dst := st.Size()-keep, int64(0)
	buf := make([]byte, 256<<10)
	for {
		n, err := f.ReadAt(buf, src)
		if n > 0 {
			if _, werr := f.WriteAt(buf[:n], dst); werr != nil {
				return false, fmt.Errorf("trimming %s: %w", path, werr)
			}
			src, dst = src+int64(n), dst+int64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return false, fmt.Errorf("trimming %s: %w", path, err)
		}
	}
	if err := f.Truncate(dst); err != nil {
		return false, fmt.Errorf("trimming %s: %w", path, err)
	}
	return true, nil
}
