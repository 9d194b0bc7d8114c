package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// DeviceAllocate gives the zdb engine a zdb subvolume of size bytes on the HDD
// pool with the most free space that has no zdb device yet.
func (m *Module) DeviceAllocate(size uint64) (Device, error) {
	if size == 0 {
		return Device{}, fmt.Errorf("allocating zdb device: size must be positive: %w", ErrInvalid)
	}
	m.mu.Lock()
	m.refreshLocked()
	p, err := choose(m.pools, HDDOnly, size, func(p *pool) bool { return m.devices[p.name] == nil })
	if err != nil {
		m.mu.Unlock()
		return Device{}, fmt.Errorf("allocating zdb device: %w", err)
	}
	d := &device{pool: p, size: size}
	m.devices[p.name] = d
	p.allocated += size
	m.mu.Unlock()

	// Made under a temporary name and renamed once its quota is set: a
	// crash in between must not leave a device without a size (the scan
	// at start removes the temporary one).
	path, tmp := filepath.Join(p.path, zdbName), filepath.Join(p.path, zdbTmpName)
	_ = m.sys.FS.SubvolumeDelete(tmp)
	err = m.sys.FS.SubvolumeCreate(tmp)
	if err == nil {
		if err = m.sys.Quotas.Limit(tmp, size); err == nil {
			err = os.Rename(tmp, path)
		}
		if err != nil {
			_ = m.sys.FS.SubvolumeDelete(tmp)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.devices, p.name)
		p.allocated -= size
		return Device{}, fmt.Errorf("allocating zdb device on pool %s: %w", p.name, err)
	}
	d.ready = true
	return Device{ID: p.name, Path: path, Pool: p.name, Size: size}, nil
}

// DeviceLookup returns the zdb device with the given ID (its pool's name).
func (m *Module) DeviceLookup(id string) (Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.devices[id]
	if !ok || !d.ready {
		return Device{}, m.notFoundLocked("zdb device " + id)
	}
	if err := onFailedLocked("zdb device "+id, d.pool); err != nil {
		return Device{}, err
	}
	return Device{ID: id, Path: filepath.Join(d.pool.path, zdbName), Pool: d.pool.name, Size: d.size}, nil
}

// Devices lists the zdb devices on healthy pools, sorted by ID.
func (m *Module) Devices() ([]Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Device
	for id, d := range m.devices {
		if d.ready && d.pool.broken == "" {
			out = append(out, Device{ID: id, Path: filepath.Join(d.pool.path, zdbName), Pool: d.pool.name, Size: d.size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// DeviceFree is how many bytes can really still be written into a zdb
// device: the smaller of what its quota leaves (its size less what it
// references) and what its pool's file system has free. The zdb manager
// checks it before a namespace grows.
func (m *Module) DeviceFree(id string) (uint64, error) {
	m.mu.Lock()
	d, ok := m.devices[id]
	if !ok || !d.ready {
		m.mu.Unlock()
		return 0, fmt.Errorf("zdb device %s: %w", id, ErrNotFound)
	}
	p, size := d.pool, d.size
	err := m.healthLocked(p)
	m.mu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("free space of zdb device %s: %w", id, err)
	}
	path := filepath.Join(p.path, zdbName)
	q, err := m.sys.Quotas.Qgroup(path)
	if err != nil {
		return 0, fmt.Errorf("free space of zdb device %s: %w", id, err)
	}
	free := size - min(size, q.Referenced)
	st, err := m.sys.Mounts.Statfs(path)
	if err != nil {
		return 0, fmt.Errorf("free space of zdb device %s: %w", id, err)
	}
	if st.Total > 0 {
		free = min(free, st.Avail)
	}
	return free, nil
}
