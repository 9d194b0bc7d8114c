// Package primitives holds the managers of the provision engine: one per
// workload type, each turning a workload into what the node's modules make
// (a virtual disk, a volume, a 0-db namespace) and back.
package primitives

import (
	"context"
	"errors"
	"fmt"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
)

// ranBefore reports whether a workload was provisioned before (the engine
// replays it after a restart): what it made must exist. When it is gone
// (its pool failed or went missing) it is not made again, empty, under the
// same name: the workload fails with the reason.
func ranBefore(wl *provision.Workload) bool {
	return wl.Result.State.IsOkay() || wl.Result.State == gridtypes.StateUnChanged
}

// goneError is the error of a workload whose storage is gone.
func goneError(what string, err error) error {
	return fmt.Errorf("%s is gone and is not made again empty: %w", what, err)
}

// Volumes is what the volume manager needs of storage.
type Volumes interface {
	VolumeCreate(name string, size uint64) (storage.Volume, error)
	VolumeUpdate(name string, size uint64) (storage.Volume, error)
	VolumeDelete(name string) error
	VolumeLookup(name string) (storage.Volume, error)
}

// VolumeManager provisions volume workloads as btrfs subvolumes with a
// quota, named after the workload id.
type VolumeManager struct{ Storage Volumes }

var (
	_ provision.Manager = (*VolumeManager)(nil)
	_ provision.Updater = (*VolumeManager)(nil)
)

// Provision creates the volume, or returns the existing one.
func (m *VolumeManager) Provision(_ context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.Volume](wl)
	if err != nil {
		return nil, err
	}
	name := string(wl.ID)
	if v, err := m.Storage.VolumeLookup(name); err == nil {
		if v.Size < data.Size {
			if _, err := m.Storage.VolumeUpdate(name, data.Size); err != nil {
				return nil, err
			}
		}
		return gridtypes.VolumeResult{ID: name}, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	} else if ranBefore(wl) {
		return nil, goneError("volume "+name, err)
	}
	if _, err := m.Storage.VolumeCreate(name, data.Size); err != nil {
		return nil, err
	}
	return gridtypes.VolumeResult{ID: name}, nil
}

// Update grows the volume; shrinking is refused and leaves it unchanged.
func (m *VolumeManager) Update(_ context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.Volume](wl)
	if err != nil {
		return nil, err
	}
	name := string(wl.ID)
	v, err := m.Storage.VolumeLookup(name)
	if err != nil {
		return nil, err
	}
	if data.Size < v.Size {
		return nil, provision.Unchanged(fmt.Errorf("a volume cannot shrink (from %d to %d bytes)", v.Size, data.Size))
	}
	if data.Size > v.Size {
		if _, err := m.Storage.VolumeUpdate(name, data.Size); err != nil {
			return nil, provision.Unchanged(err)
		}
	}
	return gridtypes.VolumeResult{ID: name}, nil
}

// Deprovision deletes the volume and its data.
func (m *VolumeManager) Deprovision(_ context.Context, wl *provision.Workload) error {
	err := m.Storage.VolumeDelete(string(wl.ID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// Disks is what the zmount manager needs of storage.
type Disks interface {
	DiskCreate(name string, size uint64) (storage.VDisk, error)
	DiskResize(name string, size uint64) (storage.VDisk, error)
	DiskDelete(name string) error
	DiskLookup(name string) (storage.VDisk, error)
}

// ZMountManager provisions zmount workloads as preallocated virtual disks.
type ZMountManager struct{ Storage Disks }

var (
	_ provision.Manager = (*ZMountManager)(nil)
	_ provision.Updater = (*ZMountManager)(nil)
)

// Provision creates the disk, or returns the existing one.
func (m *ZMountManager) Provision(_ context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.ZMount](wl)
	if err != nil {
		return nil, err
	}
	name := string(wl.ID)
	if _, err := m.Storage.DiskLookup(name); err == nil {
		return gridtypes.ZMountResult{ID: name}, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	} else if ranBefore(wl) {
		return nil, goneError("disk "+name, err)
	}
	if _, err := m.Storage.DiskCreate(name, data.Size); err != nil {
		return nil, err
	}
	return gridtypes.ZMountResult{ID: name}, nil
}

// Update grows the disk; shrinking is refused and leaves it unchanged.
func (m *ZMountManager) Update(_ context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.ZMount](wl)
	if err != nil {
		return nil, err
	}
	name := string(wl.ID)
	d, err := m.Storage.DiskLookup(name)
	if err != nil {
		return nil, err
	}
	if data.Size < d.Size {
		return nil, provision.Unchanged(fmt.Errorf("a disk cannot shrink (from %d to %d bytes)", d.Size, data.Size))
	}
	if data.Size > d.Size {
		if _, err := m.Storage.DiskResize(name, data.Size); err != nil {
			return nil, provision.Unchanged(err)
		}
	}
	return gridtypes.ZMountResult{ID: name}, nil
}

// Deprovision deletes the disk.
func (m *ZMountManager) Deprovision(_ context.Context, wl *provision.Workload) error {
	err := m.Storage.DiskDelete(string(wl.ID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}
