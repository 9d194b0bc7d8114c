package storage

import (
	"fmt"
	"time"

	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/btrfs"
	"github.com/zos-go/zos/internal/sys/loop"
	"github.com/zos-go/zos/internal/sys/mount"
	"github.com/zos-go/zos/internal/sys/prealloc"
)

// Disks finds block devices and what they carry.
type Disks interface {
	List() ([]blockdev.Disk, error)
	Stat(dev string) (blockdev.Disk, error)
	Probe(path string) (blockdev.Signature, error)
	SeekTime(dev string) (time.Duration, error)
}

// Loops attaches files as block devices.
type Loops interface {
	Attach(file string) (dev string, err error)
	Detach(dev string) error
}

// Mounts mounts file systems and reports on them.
type Mounts interface {
	Mount(source, target, fstype, data string) error
	Unmount(target string) error
	Mounted(target string) (bool, error)
	Statfs(path string) (mount.Stat, error)
}

// Filesystems makes btrfs file systems and subvolumes.
type Filesystems interface {
	Mkfs(dev, label string) error
	QuotaEnable(mnt string) error
	SubvolumeCreate(path string) error
	SubvolumeDelete(path string) error
}

// Quotas sets and reads qgroup limits and usage.
type Quotas interface {
	Limit(path string, size uint64) error
	Qgroup(path string) (btrfs.Qgroup, error)
	Qgroups(mnt string) (map[string]btrfs.Qgroup, error)
}

// Files makes preallocated no-copy-on-write files.
type Files interface {
	Allocate(path string, size uint64) error
}

// Stats reads the error counters btrfs keeps for a file system's devices.
type Stats interface {
	DeviceStats(mnt string) (btrfs.DeviceStats, error)
}

// System is everything the module needs from the kernel.
type System struct {
	Disks  Disks
	Loops  Loops
	Mounts Mounts
	FS     Filesystems
	Quotas Quotas
	Files  Files
	Stats  Stats
}

func (s System) validate() error {
	if s.Disks == nil || s.Loops == nil || s.Mounts == nil || s.FS == nil || s.Quotas == nil || s.Files == nil || s.Stats == nil {
		return fmt.Errorf("incomplete system dependencies: %w", ErrInvalid)
	}
	return nil
}

// hostDisks joins sysfs and blkid.
type hostDisks struct {
	blockdev.Sysfs
	blockdev.Blkid
}

// SeekTime samples 32 random reads.
func (hostDisks) SeekTime(dev string) (time.Duration, error) { return blockdev.SeekTime(dev, 32) }

// HostSystem is the System of a live machine: sysfs, blkid, losetup,
// mount(2), btrfs-progs and fallocate.
func HostSystem() System {
	b := btrfs.Btrfs{}
	return System{
		Disks:  hostDisks{},
		Loops:  loop.Losetup{},
		Mounts: mount.Mounter{},
		FS:     b,
		Quotas: b,
		Files:  prealloc.Files{},
		Stats:  b,
	}
}

var (
	_ Disks       = hostDisks{}
	_ Loops       = loop.Losetup{}
	_ Mounts      = mount.Mounter{}
	_ Filesystems = btrfs.Btrfs{}
	_ Quotas      = btrfs.Btrfs{}
	_ Files       = prealloc.Files{}
	_ Stats       = btrfs.Btrfs{}
)
