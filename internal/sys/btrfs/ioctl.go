package btrfs

import (
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioctls from linux/btrfs.h. Subvolume and qgroup changes go through them
// rather than btrfs-progs: starting a process costs more than the work.
const (
	iocSubvolCreate = 0x5000940e // _IOW(0x94, 14, struct btrfs_ioctl_vol_args)
	iocSnapDestroy  = 0x5000940f // _IOW(0x94, 15, struct btrfs_ioctl_vol_args)
	iocQgroupLimit  = 0x8030942b // _IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args)

	qgroupLimitMaxRfer = 1 << 0 // BTRFS_QGROUP_LIMIT_MAX_RFER
	volNameMax         = 4087   // BTRFS_PATH_NAME_MAX
)

// volArgs is struct btrfs_ioctl_vol_args.
type volArgs struct {
	fd   int64
	name [volNameMax + 1]byte
}

// qgroupLimitArgs is struct btrfs_ioctl_qgroup_limit_args.
type qgroupLimitArgs struct {
	qgroupid uint64
	flags    uint64
	maxRfer  uint64
	maxExcl  uint64
	rsvRfer  uint64
	rsvExcl  uint64
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// onParent runs a vol_args ioctl on the parent directory of path with its
// base name.
func onParent(path string, req uintptr) error {
	dir, name := filepath.Split(filepath.Clean(path))
	if name == "" || len(name) > volNameMax {
		return fmt.Errorf("bad subvolume name %q", name)
	}
	if dir == "" {
		dir = "."
	}
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	var a volArgs
	copy(a.name[:], name)
	return ioctl(f, req, unsafe.Pointer(&a))
}

func subvolCreate(path string) error { return onParent(path, iocSubvolCreate) }

func subvolDestroy(path string) error { return onParent(path, iocSnapDestroy) }

// qgroupLimit sets max referenced bytes of the subvolume at path (qgroup id
// 0 means "the subvolume of this file"); 0 removes the limit.
func qgroupLimit(path string, size uint64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	a := qgroupLimitArgs{flags: qgroupLimitMaxRfer, maxRfer: size}
	if size == 0 {
		a.maxRfer = ^uint64(0)
	}
	return ioctl(f, iocQgroupLimit, unsafe.Pointer(&a))
}
