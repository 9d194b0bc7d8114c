package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// DiskCreate makes a preallocated no-copy-on-write file of size bytes in the
// vdisks subvolume of the SSD pool with the most free space. Creating a disk
// that exists with the same size returns it.
func (m *Module) DiskCreate(name string, size uint64) (VDisk, error) {
	if err := ValidName(name); err != nil {
		return VDisk{}, fmt.Errorf("creating disk: %w", err)
	}
	if size == 0 {
		return VDisk{}, fmt.Errorf("creating disk %s: size must be positive: %w", name, ErrInvalid)
	}
	m.mu.Lock()
	if d, ok := m.vdisks[name]; ok {
		ready, have := d.ready, d.size
		m.mu.Unlock()
		if ready && have == size {
			return m.DiskLookup(name)
		}
		return VDisk{}, fmt.Errorf("creating disk %s: %w", name, ErrExists)
	}
	m.refreshLocked()
	p, err := choose(m.pools, SSDOnly, size, nil)
	if err != nil {
		m.mu.Unlock()
		return VDisk{}, fmt.Errorf("creating disk %s: %w", name, err)
	}
	d := &vdisk{pool: p, size: size}
	m.vdisks[name] = d
	p.allocated += size
	m.mu.Unlock()

	path := filepath.Join(p.path, vdisksName, name)
	err = m.vdisksDir(p)
	if err == nil {
		err = m.sys.Files.Allocate(path, size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.vdisks, name)
		p.allocated -= size
		if herr := m.healthLocked(p); herr != nil {
			err = fmt.Errorf("%w (%w)", herr, err)
		}
		return VDisk{}, fmt.Errorf("creating disk %s on pool %s: %w", name, p.name, noSpace(err))
	}
	d.ready = true
	return VDisk{Name: name, Path: path, Size: size}, nil
}

// noSpace marks ENOSPC from the kernel with ErrNoSpace.
func noSpace(err error) error {
	if errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrNoSpace) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}

// vdisksDir creates the pool's vdisks subvolume once.
func (m *Module) vdisksDir(p *pool) error {
	m.setup.Lock()
	defer m.setup.Unlock()
	m.mu.Lock()
	has := p.hasVdisks
	m.mu.Unlock()
	if has {
		return nil
	}
	if err := m.sys.FS.SubvolumeCreate(filepath.Join(p.path, vdisksName)); err != nil {
		return err
	}
	m.mu.Lock()
	p.hasVdisks = true
	m.mu.Unlock()
	return nil
}

func (m *Module) readyDiskLocked(name string) (*vdisk, error) {
	d, ok := m.vdisks[name]
	if !ok || !d.ready {
		return nil, fmt.Errorf("disk %s: %w", name, ErrNotFound)
	}
	return d, nil
}

// DiskResize grows a disk; shrinking is refused.
func (m *Module) DiskResize(name string, size uint64) (VDisk, error) {
	if err := ValidName(name); err != nil {
		return VDisk{}, fmt.Errorf("resizing disk: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.readyDiskLocked(name)
	if err != nil {
		return VDisk{}, fmt.Errorf("resizing disk: %w", err)
	}
	p := d.pool
	path := filepath.Join(p.path, vdisksName, name)
	if size < d.size {
		return VDisk{}, fmt.Errorf("resizing disk %s on pool %s: %s is smaller than %s, disks never shrink: %w",
			name, p.name, sizeString(size), sizeString(d.size), ErrInvalid)
	}
	if size > d.size {
		if err := m.growLocked(p, d.size, size); err != nil {
			return VDisk{}, fmt.Errorf("resizing disk %s on pool %s: %w", name, p.name, err)
		}
		if err := m.sys.Files.Allocate(path, size); err != nil {
			return VDisk{}, fmt.Errorf("resizing disk %s on pool %s: %w", name, p.name, noSpace(err))
		}
		p.allocated += size - d.size
		d.size = size
	}
	return VDisk{Name: name, Path: path, Size: d.size}, nil
}

// DiskWrite copies a raw image into a disk, unless the disk already carries a
// file system or partition table (a VM that booted once keeps its data).
func (m *Module) DiskWrite(name string, image string) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("writing disk: %w", err)
	}
	m.mu.Lock()
	d, err := m.readyDiskLocked(name)
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("writing disk: %w", err)
	}
	p, size := d.pool, d.size
	err = m.healthLocked(p)
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("writing disk %s on pool %s: %w", name, p.name, err)
	}
	path := filepath.Join(p.path, vdisksName, name)
	src, err := os.Open(image)
	if err != nil {
		return fmt.Errorf("writing disk %s: %w", name, err)
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return fmt.Errorf("writing disk %s: %w", name, err)
	}
	if uint64(st.Size()) > size {
		return fmt.Errorf("writing disk %s on pool %s: image %s (%s) is larger than the disk (%s): %w",
			name, p.name, image, sizeString(uint64(st.Size())), sizeString(size), ErrInvalid)
	}
	sig, err := m.sys.Disks.Probe(path)
	if err != nil {
		return fmt.Errorf("writing disk %s on pool %s: %w", name, p.name, err)
	}
	if !sig.Empty() {
		m.log.Info("disk_write_skipped", "disk", name, "fs", sig.Type, "part_table", sig.PartTable)
		return nil
	}
	dst, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("writing disk %s on pool %s: %w", name, p.name, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("writing disk %s on pool %s: %w", name, p.name, noSpace(err))
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return fmt.Errorf("writing disk %s on pool %s: %w", name, p.name, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("writing disk %s on pool %s: %w", name, p.name, err)
	}
	return nil
}

// DiskDelete removes a disk.
func (m *Module) DiskDelete(name string) error {
	if err := ValidName(name); err != nil {
		return fmt.Errorf("deleting disk: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, err := m.readyDiskLocked(name)
	if err != nil {
		return fmt.Errorf("deleting disk: %w", err)
	}
	p := d.pool
	if err := os.Remove(filepath.Join(p.path, vdisksName, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("deleting disk %s on pool %s: %w", name, p.name, err)
	}
	delete(m.vdisks, name)
	p.allocated -= min(p.allocated, d.size)
	return nil
}

// DiskLookup returns a disk.
func (m *Module) DiskLookup(name string) (VDisk, error) {
	if err := ValidName(name); err != nil {
		return VDisk{}, fmt.Errorf("looking up disk: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.vdisks[name]
	if !ok || !d.ready {
		return VDisk{}, fmt.Errorf("looking up disk: %w", m.notFoundLocked("disk "+name))
	}
	if err := onFailedLocked("disk "+name, d.pool); err != nil {
		return VDisk{}, fmt.Errorf("looking up disk: %w", err)
	}
	return VDisk{Name: name, Path: filepath.Join(d.pool.path, vdisksName, name), Size: d.size}, nil
}

// DiskList returns every disk, sorted by name.
func (m *Module) DiskList() []VDisk {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []VDisk
	for name, d := range m.vdisks {
		if d.ready {
			out = append(out, VDisk{Name: name, Path: filepath.Join(d.pool.path, vdisksName, name), Size: d.size})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
