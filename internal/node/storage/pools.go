package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/zos-go/zos/internal/sys/blockdev"
)

// candidate is a block device that may become a pool.
type candidate struct {
	dev     string
	typ     DeviceType // declared (hosted), empty to decide from the disk
	backing string     // hosted file
}

// marker is the pool-root file that remembers what was decided once.
type marker struct {
	Type DeviceType `json:"type"`
}

// Start attaches hosted disks, discovers and mounts pools, finds existing
// volumes, vdisks and devices, sets up the cache and starts the cache quota
// loop. A disk or pool that fails is reported (Pools, Ignored), not fatal.
// Call Close to undo it, also when Start failed.
func (m *Module) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.done != nil {
		return fmt.Errorf("starting storage: already started")
	}
	if err := os.MkdirAll(m.cfg.Root, 0o755); err != nil {
		return fmt.Errorf("starting storage: creating root: %w", err)
	}
	cands, err := m.hostedLocked()
	if err != nil {
		return fmt.Errorf("starting storage: %w", err)
	}
	if m.cfg.ScanHost {
		disks, err := m.sys.Disks.List()
		if err != nil {
			return fmt.Errorf("starting storage: scanning disks: %w", err)
		}
		for _, d := range disks {
			if blockdev.Physical(d.Name) && !d.Removable {
				cands = append(cands, candidate{dev: d.Path})
			}
		}
	}
	for _, dev := range m.cfg.Devices {
		cands = append(cands, candidate{dev: dev})
	}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("starting storage: %w", err)
		}
		m.claimLocked(c)
	}
	sort.Slice(m.pools, func(i, j int) bool { return m.pools[i].name < m.pools[j].name })
	if err := m.setupCacheLocked(); err != nil {
		return fmt.Errorf("starting storage: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.cacheLoop(loopCtx, m.done)
	m.log.Info("storage_started", "pools", len(m.pools), "ignored", len(m.ignored),
		"volumes", len(m.volumes), "vdisks", len(m.vdisks), "cache", m.cacheDir, "limited_cache", m.limited)
	return nil
}

// hostedLocked makes the hosted disk files (sparse) and attaches them.
func (m *Module) hostedLocked() ([]candidate, error) {
	if len(m.cfg.Disks) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(m.cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	var cands []candidate
	for i, d := range m.cfg.Disks {
		file := filepath.Join(m.cfg.DataDir, fmt.Sprintf("%sdisk%d.img", m.cfg.Prefix, i))
		if err := sparse(file, d.Size); err != nil {
			m.ignored = append(m.ignored, IgnoredDisk{Path: file, Reason: err.Error()})
			m.log.Error("hosted_disk_failed", "file", file, "err", err)
			continue
		}
		dev, err := m.sys.Loops.Attach(file)
		if err != nil {
			m.ignored = append(m.ignored, IgnoredDisk{Path: file, Reason: err.Error()})
			m.log.Error("hosted_disk_failed", "file", file, "err", err)
			continue
		}
		m.loops = append(m.loops, dev)
		cands = append(cands, candidate{dev: dev, typ: d.Type, backing: file})
	}
	return cands, nil
}

// sparse creates file with size bytes, or grows a smaller one.
func sparse(file string, size uint64) error {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("creating disk file %s: %w", file, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("creating disk file %s: %w", file, err)
	}
	if uint64(st.Size()) < size {
		if err := f.Truncate(int64(size)); err != nil {
			return fmt.Errorf("sizing disk file %s: %w", file, err)
		}
	}
	return nil
}

func (m *Module) ignore(dev, reason string) {
	m.ignored = append(m.ignored, IgnoredDisk{Path: dev, Reason: reason})
	m.log.Warn("disk_ignored", "dev", dev, "reason", reason)
}

// ours reports whether a file system label is one of this node's pools.
func (m *Module) ours(label string) bool {
	return strings.HasPrefix(label, m.cfg.Prefix+"zos-") && len(label) == len(m.cfg.Prefix)+len("zos-")+12
}

func (m *Module) newLabel() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return m.cfg.Prefix + "zos-" + hex.EncodeToString(b), nil
}

// claimLocked turns a candidate into a pool: adopt ours, format a blank one,
// leave anything else alone.
func (m *Module) claimLocked(c candidate) {
	disk, err := m.sys.Disks.Stat(c.dev)
	if err != nil {
		m.ignore(c.dev, err.Error())
		return
	}
	if len(disk.Partitions) > 0 {
		m.ignore(c.dev, "has partitions "+strings.Join(disk.Partitions, ","))
		return
	}
	if disk.ReadOnly {
		m.ignore(c.dev, "is read-only")
		return
	}
	sig, err := m.sys.Disks.Probe(c.dev)
	if err != nil {
		m.ignore(c.dev, err.Error())
		return
	}
	var label string
	fresh := false
	switch {
	case sig.PartTable != "":
		m.ignore(c.dev, "carries a "+sig.PartTable+" partition table")
		return
	case sig.Type == "btrfs" && m.ours(sig.Label):
		label = sig.Label
	case sig.Type != "":
		m.ignore(c.dev, fmt.Sprintf("carries a %s file system (label %q) that is not ours", sig.Type, sig.Label))
		return
	default:
		if label, err = m.newLabel(); err != nil {
			m.ignore(c.dev, err.Error())
			return
		}
		if err := m.sys.FS.Mkfs(c.dev, label); err != nil {
			m.ignore(c.dev, err.Error())
			return
		}
		fresh = true
		m.log.Info("pool_created", "pool", label, "dev", c.dev)
	}
	p := &pool{name: label, dev: c.dev, path: filepath.Join(m.cfg.Root, label), size: disk.Size, backing: c.backing}
	m.pools = append(m.pools, p)
	if err := m.mountLocked(p, c, fresh); err != nil {
		p.broken = err.Error()
		m.log.Error("pool_broken", "pool", p.name, "dev", p.dev, "err", err)
	}
}

func (m *Module) mountLocked(p *pool, c candidate, fresh bool) error {
	mounted, err := m.sys.Mounts.Mounted(p.path)
	if err != nil {
		return fmt.Errorf("checking mount of pool %s: %w", p.name, err)
	}
	if !mounted {
		if err := m.sys.Mounts.Mount(p.dev, p.path, "btrfs", ""); err != nil {
			return fmt.Errorf("mounting pool %s: %w", p.name, err)
		}
	}
	p.mounted = true
	st, err := m.sys.Mounts.Statfs(p.path)
	if err != nil {
		return fmt.Errorf("checking pool %s: %w", p.name, err)
	}
	if st.ReadOnly {
		return fmt.Errorf("pool %s is mounted read-only", p.name)
	}
	if st.Total > 0 {
		p.size = st.Total
	}
	mk, err := readMarker(p.path)
	switch {
	case errors.Is(err, os.ErrNotExist) || fresh:
		// Decided once: declared in hosted mode, else the rotational flag.
		// (A seek-time probe on real hardware is still to do.)
		t := c.typ
		if t == "" {
			disk, err := m.sys.Disks.Stat(p.dev)
			if err != nil {
				return fmt.Errorf("typing pool %s: %w", p.name, err)
			}
			t = SSD
			if disk.Rotational {
				t = HDD
			}
		}
		if err := m.sys.FS.QuotaEnable(p.path); err != nil {
			return fmt.Errorf("setting up pool %s: %w", p.name, err)
		}
		if err := writeMarker(p.path, marker{Type: t}); err != nil {
			return fmt.Errorf("setting up pool %s: %w", p.name, err)
		}
		p.typ = t
	case err != nil:
		return fmt.Errorf("reading pool %s: %w", p.name, err)
	default:
		p.typ = mk.Type
	}
	return m.scanLocked(p)
}

func readMarker(dir string) (marker, error) {
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return marker{}, err
	}
	var mk marker
	if err := json.Unmarshal(b, &mk); err != nil {
		return marker{}, fmt.Errorf("parsing %s: %w", markerName, err)
	}
	if mk.Type != SSD && mk.Type != HDD {
		return marker{}, fmt.Errorf("%s: unknown type %q", markerName, mk.Type)
	}
	return mk, nil
}

func writeMarker(dir string, mk marker) error {
	b, err := json.Marshal(mk)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, markerName+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", markerName, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, markerName)); err != nil {
		return fmt.Errorf("writing %s: %w", markerName, err)
	}
	return nil
}

// scanLocked finds the volumes, vdisks, zdb device and cache of a mounted
// pool, and counts what they hold against the pool.
func (m *Module) scanLocked(p *pool) error {
	qgroups, err := m.sys.Quotas.Qgroups(p.path)
	if err != nil {
		return fmt.Errorf("scanning pool %s: %w", p.name, err)
	}
	entries, err := os.ReadDir(p.path)
	if err != nil {
		return fmt.Errorf("scanning pool %s: %w", p.name, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		q, subvol := qgroups[name]
		switch {
		case name == vdisksName:
			p.hasVdisks = true
			if err := m.scanVdisksLocked(p); err != nil {
				return err
			}
		case name == zdbName && subvol:
			m.devices[p.name] = &device{pool: p, size: q.Limit, ready: true}
			p.allocated += q.Limit
		case name == cacheName && subvol:
			if m.cache == nil {
				m.cache, m.cacheLim = p, q.Limit
				p.allocated += q.Limit
			} else {
				m.log.Warn("extra_cache_ignored", "pool", p.name)
			}
		case subvol && ValidName(name) == nil:
			if other, dup := m.volumes[name]; dup {
				m.log.Warn("duplicate_volume_ignored", "volume", name, "pool", p.name, "kept_pool", other.pool.name)
				continue
			}
			m.volumes[name] = &volume{pool: p, size: q.Limit, ready: true}
			p.allocated += q.Limit
		}
	}
	return nil
}

func (m *Module) scanVdisksLocked(p *pool) error {
	dir := filepath.Join(p.path, vdisksName)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("scanning vdisks of pool %s: %w", p.name, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || ValidName(e.Name()) != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("scanning vdisks of pool %s: %w", p.name, err)
		}
		if other, dup := m.vdisks[e.Name()]; dup {
			m.log.Warn("duplicate_vdisk_ignored", "vdisk", e.Name(), "pool", p.name, "kept_pool", other.pool.name)
			continue
		}
		size := uint64(info.Size())
		m.vdisks[e.Name()] = &vdisk{pool: p, size: size, ready: true}
		p.allocated += size
	}
	return nil
}

// healthLocked re-checks a pool that looked healthy: its disk file is still
// there (hosted mode) and it is still writable. A pool found broken stays
// broken until the next start.
func (m *Module) healthLocked(p *pool) error {
	if p.broken == "" {
		if p.backing != "" {
			if _, err := os.Stat(p.backing); err != nil {
				p.broken = fmt.Sprintf("disk file %s is gone: %v", p.backing, err)
			}
		}
		if p.broken == "" {
			st, err := m.sys.Mounts.Statfs(p.path)
			switch {
			case err != nil:
				p.broken = err.Error()
			case st.ReadOnly:
				p.broken = "file system turned read-only"
			}
		}
		if p.broken != "" {
			m.log.Error("pool_broken", "pool", p.name, "reason", p.broken)
		}
	}
	if p.broken != "" {
		return fmt.Errorf("pool %s is broken: %s", p.name, p.broken)
	}
	return nil
}

func (m *Module) refreshLocked() {
	for _, p := range m.pools {
		_ = m.healthLocked(p)
	}
}

// Pools lists every pool, broken ones with the reason.
func (m *Module) Pools() []PoolInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshLocked()
	out := make([]PoolInfo, 0, len(m.pools))
	for _, p := range m.pools {
		out = append(out, PoolInfo{Name: p.name, Type: p.typ, Size: p.size, Used: p.allocated, Broken: p.broken})
	}
	return out
}

// Total is the size of the healthy pools of a type: SRU for SSD, HRU for HDD.
func (m *Module) Total(t DeviceType) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n uint64
	for _, p := range m.pools {
		if p.broken == "" && p.typ == t {
			n += p.size
		}
	}
	return n
}

// Ignored lists the disks left alone (foreign file systems, partitions,
// failures), with the reason.
func (m *Module) Ignored() []IgnoredDisk {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]IgnoredDisk(nil), m.ignored...)
}

// Close stops the cache loop, unmounts what the module mounted and detaches
// its loop devices. The module can be started again afterwards.
func (m *Module) Close() error {
	m.mu.Lock()
	cancel, done := m.cancel, m.done
	m.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	if m.tmpfs != "" {
		if err := m.sys.Mounts.Unmount(m.tmpfs); err != nil {
			errs = append(errs, fmt.Errorf("unmounting tmpfs cache: %w", err))
		}
	}
	for _, p := range m.pools {
		if !p.mounted {
			continue
		}
		if err := m.sys.Mounts.Unmount(p.path); err != nil {
			errs = append(errs, fmt.Errorf("unmounting pool %s: %w", p.name, err))
			continue
		}
		_ = os.Remove(p.path)
	}
	for _, dev := range m.loops {
		if err := m.sys.Loops.Detach(dev); err != nil {
			errs = append(errs, err)
		}
	}
	m.pools, m.ignored, m.loops = nil, nil, nil
	m.volumes, m.vdisks, m.devices = make(map[string]*volume), make(map[string]*vdisk), make(map[string]*device)
	m.cache, m.cacheLim, m.cacheDir, m.limited, m.tmpfs = nil, 0, "", false, ""
	m.cancel, m.done = nil, nil
	return errors.Join(errs...)
}
