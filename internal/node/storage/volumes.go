package storage

import (
	"fmt"
	"path/filepath"
	"sort"
)

// VolumeCreate makes a subvolume limited to size on the SSD pool with the most
// free space. Creating a volume that exists with the same size returns it
// (so replays are harmless); with another size it fails with ErrExists.
func (m *Module) VolumeCreate(name string, size uint64) (Volume, error) {
	if err := ValidName(name); err != nil {
		return Volume{}, fmt.Errorf("creating volume: %w", err)
	}
	if size == 0 {
		return Volume{}, fmt.Errorf("creating volume %s: size must be positive: %w", name, ErrInvalid)
	}
	m.mu.Lock()
	if v, ok := m.volumes[name]; ok {
		ready, have := v.ready, v.size
		m.mu.Unlock()
		if ready && have == size {
			return m.VolumeLookup(name)
		}
		return Volume{}, fmt.Errorf("creating volume %s: %w", name, ErrExists)
	}
	m.refreshLocked()
	p, err := choose(m.pools, SSDOnly, size, nil)
	if err != nil {
		m.mu.Unlock()
		return Volume{}, fmt.Errorf("creating volume %s: %w", name, err)
	}
	v := &volume{pool: p, size: size}
	m.volumes[name] = v
	p.allocated += size
	m.mu.Unlock()

	path := filepath.Join(p.path, name)
	err = m.sys.FS.SubvolumeCreate(path)
	if err == nil {
		if err = m.sys.Quotas.Limit(path, size); err != nil {
			_ = m.sys.FS.SubvolumeDelete(path)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.volumes, name)
		p.allocated -= size
		if herr := m.healthLocked(p); herr != nil {
			err = herr
		}
		return Volume{}, fmt.Errorf("creating volume %s on pool %s: %w", name, p.name, err)
	}
	v.ready = true
	return Volume{Name: name, Path: path, Size: size}, nil
}

// readyVolumeLocked returns a volume that finished creating.
func (m *Module) readyVolumeLocked(name string) (*volume, error) {
	v, ok := m.volumes[name]
	if !ok || !v.ready {
		return nil, fmt.Errorf("volume %s: %w", name, ErrNotFound)
	}
	return v, nil
}

// VolumeUpdate grows a volume's limit; shrinking is refused.
func (m *Module) VolumeUpdate(name string, size uint64) (Volume, error) {
	if err := ValidName(name); err != nil {
		return Volume{}, fmt.Errorf("growing volume: %w", err)
	}
	m.mu.Lock()
	v, err := m.readyVolumeLocked(name)
	if err != nil {
		m.mu.Unlock()
		return Volume{}, fmt.Errorf("growing volume: %w", err)
	}
	p := v.pool
	if size < v.size {
		m.mu.Unlock()
		return Volume{}, fmt.Errorf("growing volume %s on pool %s: %s is smaller than %s, volumes never shrink: %w",
			name, p.name, sizeString(size), sizeString(v.size), ErrInvalid)
	}
	if size > v.size {
		if err := m.growLocked(p, v.size, size); err != nil {
			m.mu.Unlock()
			return Volume{}, fmt.Errorf("growing volume %s on pool %s: %w", name, p.name, err)
		}
		if err := m.sys.Quotas.Limit(filepath.Join(p.path, name), size); err != nil {
			m.mu.Unlock()
			return Volume{}, fmt.Errorf("growing volume %s on pool %s: %w", name, p.name, err)
		}
		p.allocated += size - v.size
		v.size = size
	}
	m.mu.Unlock()
	return m.VolumeLookup(name)
}

// growLocked checks that a pool is healthy and has room to grow an object
// from old to size: the growth must fit what the pool has not promised to
// its other objects, and what its file system really has free.
func (m *Module) growLocked(p *pool, old, size uint64) error {
	if err := m.healthLocked(p); err != nil {
		return err
	}
	grow := size - old
	if p.free() < grow {
		return fmt.Errorf("%s more wanted, %s free of %s: %w", sizeString(grow), sizeString(p.free()), sizeString(p.size), ErrNoSpace)
	}
	st, err := m.sys.Mounts.Statfs(p.path)
	if err != nil {
		return err
	}
	if st.Total > 0 && st.Avail < grow {
		return fmt.Errorf("%s more wanted, %s really free on the file system: %w", sizeString(grow), sizeString(st.Avail), ErrNoSpace)
	}
	return nil
}

// VolumeDelete deletes a volume and its data.
func (m *Module) VolumeDelete(name string) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("deleting volume: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, err := m.readyVolumeLocked(name)
	if err != nil {
		return fmt.Errorf("deleting volume: %w", err)
	}
	p := v.pool
	if err := m.sys.FS.SubvolumeDelete(filepath.Join(p.path, name)); err != nil {
		if herr := m.healthLocked(p); herr != nil {
			err = fmt.Errorf("%w (%w)", herr, err)
		}
		return fmt.Errorf("deleting volume %s on pool %s: %w", name, p.name, err)
	}
	delete(m.volumes, name)
	p.allocated -= min(p.allocated, v.size)
	return nil
}

// VolumeLookup returns a volume with its current usage.
func (m *Module) VolumeLookup(name string) (Volume, error) {
	if err := ValidName(name); err != nil {
		return Volume{}, fmt.Errorf("looking up volume: %w", err)
	}
	m.mu.Lock()
	v, ok := m.volumes[name]
	if !ok || !v.ready {
		err := m.notFoundLocked("volume " + name)
		m.mu.Unlock()
		return Volume{}, fmt.Errorf("looking up volume: %w", err)
	}
	if err := onFailedLocked("volume "+name, v.pool); err != nil {
		m.mu.Unlock()
		return Volume{}, fmt.Errorf("looking up volume: %w", err)
	}
	p, size := v.pool, v.size
	m.mu.Unlock()
	path := filepath.Join(p.path, name)
	q, err := m.sys.Quotas.Qgroup(path)
	if err != nil {
		return Volume{}, fmt.Errorf("reading usage of volume %s on pool %s: %w", name, p.name, err)
	}
	return Volume{Name: name, Path: path, Size: size, Usage: q.Referenced}, nil
}

// VolumeList returns every volume with its usage, sorted by name.
func (m *Module) VolumeList() ([]Volume, error) {
	m.mu.Lock()
	byPool := make(map[*pool][]Volume)
	for name, v := range m.volumes {
		if v.ready {
			byPool[v.pool] = append(byPool[v.pool], Volume{Name: name, Path: filepath.Join(v.pool.path, name), Size: v.size})
		}
	}
	m.mu.Unlock()
	var out []Volume
	for p, vols := range byPool {
		qs, err := m.sys.Quotas.Qgroups(p.path)
		if err != nil {
			return nil, fmt.Errorf("listing volumes of pool %s: %w", p.name, err)
		}
		for _, v := range vols {
			v.Usage = qs[v.Name].Referenced
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
