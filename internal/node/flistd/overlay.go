package flistd

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/zos-go/zos/internal/atomicfile"
)

// overlayRecord is kept per overlay: which flist it sits on and the daemon
// that served the lower layer when it was mounted. A lower mount that was
// replaced since (its daemon died) leaves the overlay on a dead layer even
// when the new one is healthy.
type overlayRecord struct {
	Target string `json:"target"`
	Hash   string `json:"hash"`
	Pid    int    `json:"pid"`
}

func (m *Module) recordPath(target string) string {
	sum := sha256.Sum256([]byte(target))
	return m.path(dirOverlays, hex.EncodeToString(sum[:16])+".json")
}

func (m *Module) readRecord(target string) (overlayRecord, bool) {
	b, err := os.ReadFile(m.recordPath(target))
	if err != nil {
		return overlayRecord{}, false
	}
	var r overlayRecord
	if json.Unmarshal(b, &r) != nil || r.Target != target {
		return overlayRecord{}, false
	}
	return r, true
}

// MountOverlay makes target a writable overlay: lower the read-only mount
// of url, upper and work directories rwDir/upper and rwDir/work (created).
// An existing healthy overlay of the same flist and rwDir on target is kept
// (node restart); one whose lower layer died is replaced.
func (m *Module) MountOverlay(ctx context.Context, url, rwDir, target string) error {
	if !filepath.IsAbs(rwDir) || !filepath.IsAbs(target) {
		return fmt.Errorf("overlay of %s: rw dir %q and target %q must be absolute", url, rwDir, target)
	}
	rwDir, target = filepath.Clean(rwDir), filepath.Clean(target)
	hash, err := m.fetch(ctx, url)
	if err != nil {
		return err
	}
	unlock := m.lock(hash)
	defer unlock()
	pid, err := m.ensureRO(ctx, hash)
	if err != nil {
		return fmt.Errorf("mounting flist %s: %w", url, err)
	}
	lower, upper, work := m.roDir(hash), filepath.Join(rwDir, "upper"), filepath.Join(rwDir, "work")
	e, mounted, err := m.entryAt(target)
	if err != nil {
		return err
	}
	if mounted {
		if e.FSType != "overlay" || e.Option("upperdir") != upper {
			return fmt.Errorf("overlay on %s: %w (%s %s)", target, ErrTargetBusy, e.FSType, e.Source)
		}
		if e.Option("lowerdir") != lower {
			return fmt.Errorf("overlay on %s: %w: an overlay of another flist (%s)", target, ErrTargetBusy, e.Option("lowerdir"))
		}
		rec, ok := m.readRecord(target)
		if ok && rec.Hash == hash && rec.Pid == pid && readable(target) {
			m.log.Info("overlay_kept", "target", target, "hash", hash)
			return nil
		}
		m.log.Warn("overlay_stale", "target", target, "hash", hash, "recorded_pid", rec.Pid, "pid", pid)
		if err := m.mnt.Unmount(target); err != nil {
			return err
		}
	}
	if err := m.mnt.Overlay(lower, upper, work, target); err != nil {
		return fmt.Errorf("overlay of %s: %w", url, err)
	}
	b, _ := json.Marshal(overlayRecord{Target: target, Hash: hash, Pid: pid})
	if err := atomicfile.WriteFile(m.recordPath(target), b, 0o600); err != nil {
		return fmt.Errorf("recording overlay %s: %w", target, err)
	}
	m.log.Info("overlay_mounted", "target", target, "hash", hash, "rw", rwDir)
	return nil
}

// readable reports whether the root of an overlay can be listed (its layers
// answer).
func readable(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return err == nil || errors.Is(err, io.EOF)
}

// Unmount removes the overlay on target (the read-only mount stays for GC).
// Nothing mounted there is not an error.
func (m *Module) Unmount(target string) error {
	target = filepath.Clean(target)
	e, mounted, err := m.entryAt(target)
	if err != nil {
		return err
	}
	if mounted && e.FSType != "overlay" {
		return fmt.Errorf("unmounting %s: %w (%s), not an overlay", target, ErrTargetBusy, e.FSType)
	}
	if mounted {
		if err := m.mnt.Unmount(target); err != nil {
			return err
		}
	}
	if err := os.Remove(m.recordPath(target)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	m.log.Info("overlay_unmounted", "target", target)
	return nil
}
