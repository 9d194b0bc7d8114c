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
	"sync"

	"github.com/zos-go/zos/internal/atomicfile"
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
	cands = dedupe(cands)
	// Disks are independent: probe, format and mount them in parallel, then
	// merge what was found in a fixed order.
	results := make([]claim, len(cands))
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = m.claim(ctx, c)
		}()
	}
	wg.Wait()
	// Record every pool, even when cancelled, so that Close unmounts it.
	for i, r := range results {
		if r.ignored != "" {
			m.ignore(cands[i].dev, r.ignored)
			continue
		}
		m.pools = append(m.pools, r.pool)
		if r.pool.broken != "" {
			m.log.Error("pool_failed", "pool", r.pool.name, "dev", r.pool.dev, "reason", r.pool.broken)
			continue
		}
		m.mergeLocked(r.pool, r.found)
	}
	sort.Slice(m.pools, func(i, j int) bool { return m.pools[i].name < m.pools[j].name })
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("starting storage: %w", err)
	}
	if err := m.cacheLostLocked(); err != nil {
		return fmt.Errorf("starting storage: %w", err)
	}
	if err := m.setupCacheLocked(); err != nil {
		return fmt.Errorf("starting storage: %w", err)
	}
	if err := m.recordHostedLocked(); err != nil {
		return fmt.Errorf("starting storage: %w", err)
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	m.cancel, m.done = cancel, make(chan struct{})
	go m.cacheLoop(loopCtx, m.done)
	m.log.Info("storage_started", "pools", len(m.pools), "ignored", len(m.ignored),
		"volumes", len(m.volumes), "vdisks", len(m.vdisks), "cache", m.cacheDir, "limited_cache", m.limited)
	return nil
}

// dedupe drops a device named twice (by two paths or two sources): two
// claims of one disk would format it twice.
func dedupe(cands []candidate) []candidate {
	seen := make(map[string]bool)
	var out []candidate
	for _, c := range cands {
		key := c.dev
		if real, err := filepath.EvalSymlinks(c.dev); err == nil {
			key = real
		}
		if !seen[key] {
			seen[key] = true
			out = append(out, c)
		}
	}
	return out
}

// hostedLocked makes the hosted disk files (sparse) and attaches them. A
// file recorded in DataDir that is missing or shrank is not made again
// (unless Config.RecreateMissing): its pool is recorded as failed.
func (m *Module) hostedLocked() ([]candidate, error) {
	if len(m.cfg.Disks) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(m.cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating data dir: %w", err)
	}
	state, err := readState(m.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	m.state = state
	var cands []candidate
	for i, d := range m.cfg.Disks {
		file := filepath.Join(m.cfg.DataDir, fmt.Sprintf("%sdisk%d.img", m.cfg.Prefix, i))
		if rec, ok := state.find(filepath.Base(file)); ok {
			if reason := missingReason(file, rec); reason != "" {
				if !m.cfg.RecreateMissing {
					name := rec.Label
					if name == "" {
						name = filepath.Base(file)
					}
					m.pools = append(m.pools, &pool{name: name, typ: rec.Type, size: rec.Size, backing: file,
						missing: true, broken: reason, path: filepath.Join(m.cfg.Root, name)})
					m.log.Error("pool_failed", "pool", name, "reason", reason)
					continue
				}
				m.log.Warn("hosted_disk_recreated", "file", file, "reason", reason)
				if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
					return nil, fmt.Errorf("removing disk file %s: %w", file, err)
				}
			}
		}
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

// claim is what became of one candidate disk: ignored (with the reason) or a
// pool (maybe broken) with what it holds.
type claim struct {
	ignored string
	pool    *pool
	found   found
}

// found is what a pool holds, read from the pool itself.
type found struct {
	volumes   map[string]uint64 // name -> limit
	vdisks    map[string]uint64 // name -> size
	device    bool
	deviceLim uint64
	cache     bool
	cacheLim  uint64
}

// claim turns a candidate into a pool: adopt ours, format a blank one, leave
// anything else alone. It touches no module state, so candidates run in
// parallel.
func (m *Module) claim(ctx context.Context, c candidate) claim {
	if err := ctx.Err(); err != nil {
		return claim{ignored: err.Error()}
	}
	disk, err := m.sys.Disks.Stat(c.dev)
	if err != nil {
		return claim{ignored: err.Error()}
	}
	if len(disk.Partitions) > 0 {
		return claim{ignored: "has partitions " + strings.Join(disk.Partitions, ",")}
	}
	if disk.ReadOnly {
		return claim{ignored: "is read-only"}
	}
	sig, err := m.sys.Disks.Probe(c.dev)
	if err != nil {
		return claim{ignored: err.Error()}
	}
	var label string
	fresh := false
	switch {
	case sig.PartTable != "":
		return claim{ignored: "carries a " + sig.PartTable + " partition table"}
	case sig.Type == "btrfs" && m.ours(sig.Label):
		label = sig.Label
	case sig.Type != "":
		return claim{ignored: fmt.Sprintf("carries a %s file system (label %q) that is not ours", sig.Type, sig.Label)}
	default:
		if label, err = m.newLabel(); err != nil {
			return claim{ignored: err.Error()}
		}
		if err := m.sys.FS.Mkfs(c.dev, label); err != nil {
			return claim{ignored: err.Error()}
		}
		fresh = true
		m.log.Info("pool_created", "pool", label, "dev", c.dev)
	}
	p := &pool{name: label, dev: c.dev, path: filepath.Join(m.cfg.Root, label), size: disk.Size, backing: c.backing,
		fresh: fresh, devSize: disk.Size}
	if c.backing != "" {
		if st, err := os.Stat(c.backing); err == nil {
			p.fileSize = uint64(st.Size())
		}
	}
	f, err := m.mount(p, c, disk, fresh)
	if err != nil {
		p.broken = err.Error()
	}
	return claim{pool: p, found: f}
}

func (m *Module) mount(p *pool, c candidate, disk blockdev.Disk, fresh bool) (found, error) {
	mounted, err := m.sys.Mounts.Mounted(p.path)
	if err != nil {
		return found{}, fmt.Errorf("checking mount of pool %s: %w", p.name, err)
	}
	if !mounted {
		if err := m.sys.Mounts.Mount(p.dev, p.path, "btrfs", ""); err != nil {
			return found{}, fmt.Errorf("mounting pool %s: %w", p.name, err)
		}
	}
	p.mounted = true
	st, err := m.sys.Mounts.Statfs(p.path)
	if err != nil {
		return found{}, fmt.Errorf("checking pool %s: %w", p.name, err)
	}
	if st.ReadOnly {
		return found{}, fmt.Errorf("pool %s is mounted read-only", p.name)
	}
	if st.Total > 0 {
		p.size = st.Total
	}
	mk, err := readMarker(p.path)
	switch {
	case errors.Is(err, os.ErrNotExist) || fresh:
		// Decided once: declared in hosted mode, else measured.
		t := c.typ
		if t == "" {
			t = m.deviceType(p.dev, disk)
		}
		if err := m.sys.FS.QuotaEnable(p.path); err != nil {
			return found{}, fmt.Errorf("setting up pool %s: %w", p.name, err)
		}
		if err := writeMarker(p.path, marker{Type: t}); err != nil {
			return found{}, fmt.Errorf("setting up pool %s: %w", p.name, err)
		}
		p.typ = t
	case err != nil:
		return found{}, fmt.Errorf("reading pool %s: %w", p.name, err)
	default:
		p.typ = mk.Type
	}
	return m.scan(p)
}

// deviceType measures the seek time of a disk (the rotational flag is not
// trusted) and falls back on the flag when the probe fails.
func (m *Module) deviceType(dev string, disk blockdev.Disk) DeviceType {
	d, err := m.sys.Disks.SeekTime(dev)
	if err != nil {
		m.log.Warn("seek_time_failed", "dev", dev, "rotational", disk.Rotational, "err", err)
		if disk.Rotational {
			return HDD
		}
		return SSD
	}
	t := HDD
	if d < blockdev.SSDSeekTime {
		t = SSD
	}
	m.log.Info("disk_typed", "dev", dev, "seek_time", d, "type", t)
	return t
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
	// Written to a synced temporary file, renamed, and the directory synced:
	// a power cut leaves the old marker or the new one, never an empty file.
	if err := atomicfile.WriteFile(filepath.Join(dir, markerName), b, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", markerName, err)
	}
	return nil
}

// scan reads the volumes, vdisks, zdb device and cache of a mounted pool.
func (m *Module) scan(p *pool) (found, error) {
	f := found{volumes: map[string]uint64{}, vdisks: map[string]uint64{}}
	qgroups, err := m.sys.Quotas.Qgroups(p.path)
	if err != nil {
		// Quotas switched off behind our back: switch them on again once.
		m.log.Warn("pool_quota_missing", "pool", p.name, "err", err)
		if qerr := m.sys.FS.QuotaEnable(p.path); qerr == nil {
			qgroups, err = m.sys.Quotas.Qgroups(p.path)
		}
	}
	if err != nil {
		return f, fmt.Errorf("scanning pool %s: %w", p.name, err)
	}
	entries, err := os.ReadDir(p.path)
	if err != nil {
		return f, fmt.Errorf("scanning pool %s: %w", p.name, err)
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
			if err := scanVdisks(p, f.vdisks); err != nil {
				return f, err
			}
		case name == zdbName && subvol:
			f.device, f.deviceLim = true, q.Limit
		case name == zdbTmpName:
			// A device whose making was cut short.
			if err := m.sys.FS.SubvolumeDelete(filepath.Join(p.path, name)); err != nil {
				m.log.Warn("zdb_device_leftover", "pool", p.name, "err", err)
			}
		case name == cacheName && subvol:
			f.cache, f.cacheLim = true, q.Limit
		case subvol && ValidName(name) == nil:
			f.volumes[name] = q.Limit
		}
	}
	return f, nil
}

func scanVdisks(p *pool, into map[string]uint64) error {
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
		into[e.Name()] = uint64(info.Size())
	}
	return nil
}

// mergeLocked records what a pool holds and counts it against the pool. A
// name found on two pools keeps the first.
func (m *Module) mergeLocked(p *pool, f found) {
	for _, name := range sortedKeys(f.volumes) {
		if other, dup := m.volumes[name]; dup {
			m.log.Warn("duplicate_volume_ignored", "volume", name, "pool", p.name, "kept_pool", other.pool.name)
			continue
		}
		m.volumes[name] = &volume{pool: p, size: f.volumes[name], ready: true}
		p.allocated += f.volumes[name]
	}
	for _, name := range sortedKeys(f.vdisks) {
		if other, dup := m.vdisks[name]; dup {
			m.log.Warn("duplicate_vdisk_ignored", "vdisk", name, "pool", p.name, "kept_pool", other.pool.name)
			continue
		}
		m.vdisks[name] = &vdisk{pool: p, size: f.vdisks[name], ready: true}
		p.allocated += f.vdisks[name]
	}
	if f.device {
		m.devices[p.name] = &device{pool: p, size: f.deviceLim, ready: true}
		p.allocated += f.deviceLim
	}
	if f.cache {
		if m.cache == nil {
			m.cache, m.cacheLim = p, f.cacheLim
			p.allocated += f.cacheLim
		} else {
			m.log.Warn("extra_cache_ignored", "pool", p.name, "kept_pool", m.cache.name)
		}
	}
}

func sortedKeys(m map[string]uint64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// healthLocked re-checks a pool that looked healthy: its disk file is still
// there (hosted mode) and it is still writable. A pool found broken stays
// broken until the next start.
func (m *Module) healthLocked(p *pool) error {
	if p.broken == "" {
		p.broken = fileReason(p.backing, p.fileSize)
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
			m.log.Error("pool_failed", "pool", p.name, "reason", p.broken)
		}
	}
	if p.broken != "" {
		return fmt.Errorf("pool %s failed: %s: %w", p.name, p.broken, ErrPoolFailed)
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
		out = append(out, p.info())
	}
	return out
}

// Total is the size of the healthy pools of a type: SRU for SSD, HRU for HDD.
func (m *Module) Total(t DeviceType) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refreshLocked()
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
