package storage

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrPoolFailed is returned for a volume, disk or zdb device whose pool
// failed; the error says why.
var ErrPoolFailed = errors.New("pool failed")

// probeName is the file the write probe writes at a pool's root.
const probeName = ".zos-health"

// probeTarget is what a check needs of a pool, copied under the lock: the
// probes themselves run without it (a dying disk may be slow).
type probeTarget struct {
	p        *pool
	name     string
	path     string
	dev      string
	backing  string
	fileSize uint64
	devSize  uint64
	errs     uint64
	first    bool // no error counters read yet
}

// Check probes every pool that still looks healthy: its disk file (hosted
// mode) is there at its size, its device did not shrink, its file system
// is mounted writable, a small file written and synced reads back, and the
// btrfs error counters did not grow. A pool that fails a probe is marked
// failed with the reason (Pools shows it, no new allocation goes there,
// lookups of what it holds fail with ErrPoolFailed) and logged as
// pool_failed. Check returns the pools this call found failed.
func (m *Module) Check() []PoolInfo {
	m.mu.Lock()
	var targets []probeTarget
	for _, p := range m.pools {
		if p.broken == "" && !p.missing {
			targets = append(targets, probeTarget{p: p, name: p.name, path: p.path, dev: p.dev, backing: p.backing,
				fileSize: p.fileSize, devSize: p.devSize, errs: p.errs, first: !p.statsRead})
		}
	}
	m.mu.Unlock()

	reasons := make([]string, len(targets))
	counts := make([]uint64, len(targets))
	read := make([]bool, len(targets))
	for i, t := range targets {
		reasons[i], counts[i], read[i] = m.probe(t)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	var failed []PoolInfo
	for i, t := range targets {
		p := t.p
		if read[i] {
			p.errs, p.statsRead = counts[i], true
		}
		if reasons[i] == "" || p.broken != "" {
			continue
		}
		p.broken = reasons[i]
		m.log.Error("pool_failed", "pool", p.name, "reason", p.broken)
		failed = append(failed, p.info())
	}
	return failed
}

// probe runs the checks on one pool: the reason it failed ("" when
// healthy) and its btrfs error counters (read reports whether they were).
func (m *Module) probe(t probeTarget) (reason string, errs uint64, read bool) {
	if r := fileReason(t.backing, t.fileSize); r != "" {
		return r, t.errs, false
	}
	if t.dev != "" && t.devSize > 0 {
		if d, err := m.sys.Disks.Stat(t.dev); err != nil {
			return fmt.Sprintf("device %s is gone: %v", t.dev, err), t.errs, false
		} else if d.Size < t.devSize {
			return fmt.Sprintf("device %s shrank from %d to %d bytes", t.dev, t.devSize, d.Size), t.errs, false
		}
	}
	st, err := m.sys.Mounts.Statfs(t.path)
	switch {
	case err != nil:
		return fmt.Sprintf("file system: %v", err), t.errs, false
	case st.ReadOnly:
		return "file system turned read-only", t.errs, false
	}
	if err := writeProbe(filepath.Join(t.path, probeName)); err != nil {
		return fmt.Sprintf("write probe: %v", err), t.errs, false
	}
	stats, err := m.sys.Stats.DeviceStats(t.path)
	if err != nil {
		m.log.Warn("device_stats_failed", "pool", t.name, "err", err)
		return "", t.errs, false
	}
	if n := stats.Total(); !t.first && n > t.errs {
		return fmt.Sprintf("btrfs counted %d new device errors (%s)", n-t.errs, stats), n, true
	} else if t.first && n > 0 {
		m.log.Warn("pool_device_errors", "pool", t.name, "stats", stats.String())
	}
	return "", stats.Total(), true
}

// fileReason says why a hosted disk file is unusable: gone or shrunk ("" when
// it is fine or there is none).
func fileReason(file string, size uint64) string {
	if file == "" {
		return ""
	}
	st, err := os.Stat(file)
	switch {
	case err != nil:
		return fmt.Sprintf("disk file %s is gone: %v", file, err)
	case uint64(st.Size()) < size:
		return fmt.Sprintf("disk file %s shrank from %d to %d bytes", file, size, st.Size())
	}
	return ""
}

// writeProbe writes 4 KiB of random bytes to path, syncs them and reads them
// back.
func writeProbe(path string) error {
	want := make([]byte, 4096)
	_, _ = rand.Read(want)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Write(want); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 0); err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return errors.New("read back other bytes than written")
	}
	return nil
}

func (p *pool) info() PoolInfo {
	return PoolInfo{Name: p.name, Type: p.typ, Size: p.size, Used: p.allocated, Broken: p.broken}
}

// On is what a pool holds: volume and vdisk names, and whether it has the
// zdb device.
type On struct {
	Volumes []string
	VDisks  []string
	Device  bool
}

// OnPool lists what pool holds.
func (m *Module) OnPool(pool string) On {
	m.mu.Lock()
	defer m.mu.Unlock()
	var on On
	for name, v := range m.volumes {
		if v.pool.name == pool {
			on.Volumes = append(on.Volumes, name)
		}
	}
	for name, d := range m.vdisks {
		if d.pool.name == pool {
			on.VDisks = append(on.VDisks, name)
		}
	}
	_, on.Device = m.devices[pool]
	sort.Strings(on.Volumes)
	sort.Strings(on.VDisks)
	return on
}

// failedLocked describes the failed pools, for errors of things not found
// that may have lived there ("" when every pool is healthy).
func (m *Module) failedLocked() string {
	var s []string
	for _, p := range m.pools {
		if p.broken != "" {
			s = append(s, fmt.Sprintf("pool %s failed: %s", p.name, p.broken))
		}
	}
	return strings.Join(s, "; ")
}

// notFoundLocked is the error of a volume, disk or device that is not
// known, naming the failed pools it may have been on.
func (m *Module) notFoundLocked(what string) error {
	if f := m.failedLocked(); f != "" {
		return fmt.Errorf("%s: %w (%s)", what, ErrNotFound, f)
	}
	return fmt.Errorf("%s: %w", what, ErrNotFound)
}

// onFailedLocked is the error of using something on a failed pool, nil
// when its pool is healthy.
func onFailedLocked(what string, p *pool) error {
	if p.broken == "" {
		return nil
	}
	return fmt.Errorf("%s is on pool %s, which failed: %s: %w", what, p.name, p.broken, ErrPoolFailed)
}
