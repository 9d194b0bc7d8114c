package storage

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Growing a volume or disk must fit what the pool's file system really has
// free, not only what the pool has not promised (btrfs keeps part of a
// disk for itself): a tenant growing its volume into that gap is refused
// and the volume keeps its size (issue 15, finding 1).
func TestGrowthRealFree(t *testing.T) {
	requireKernel(t)
	m := startModule(t, hostedConfig(t, SSD))
	v, err := m.VolumeCreate("1-1-vol", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	p := poolOf(t, m, v.Path)
	unpromised := p.Size - p.Used
	var st syscall.Statfs_t
	if err := syscall.Statfs(v.Path, &st); err != nil {
		t.Fatal(err)
	}
	if really := st.Bavail * uint64(st.Bsize); really >= unpromised {
		t.Fatalf("%d bytes really free, %d unpromised: want fewer really free", really, unpromised)
	}
	if _, err := m.VolumeUpdate("1-1-vol", 1<<20+unpromised); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "really free") {
		t.Errorf("growing a volume by all the pool has not promised: got %v, want ErrNoSpace (really free)", err)
	}
	if got, err := m.VolumeLookup("1-1-vol"); err != nil || got.Size != 1<<20 {
		t.Errorf("volume after the refused growth: %+v, %v; want 1 MiB", got, err)
	}
	if _, err := m.DiskCreate("1-1-disk", 1<<20); err != nil {
		t.Fatal(err)
	}
	// The disk took 1 MiB of the unpromised: growing it to unpromised
	// asks for all the rest.
	if _, err := m.DiskResize("1-1-disk", unpromised); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "really free") {
		t.Errorf("growing a disk by all the pool has not promised: got %v, want ErrNoSpace (really free)", err)
	}
	if got, err := m.DiskLookup("1-1-disk"); err != nil || got.Size != 1<<20 {
		t.Errorf("disk after the refused growth: %+v, %v; want 1 MiB", got, err)
	}
}

// DeviceFree is the smaller of the device's quota headroom and the file
// system's free space, and drops as data is written into the device.
func TestDeviceFree(t *testing.T) {
	requireKernel(t)
	m := startModule(t, hostedConfig(t, HDD))
	if _, err := m.DeviceFree("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DeviceFree of an unknown device: got %v, want ErrNotFound", err)
	}
	dev, err := m.DeviceAllocate(256 << 20)
	if err != nil {
		t.Fatal(err)
	}
	before, err := m.DeviceFree(dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if before == 0 || before > dev.Size {
		t.Fatalf("DeviceFree of an empty 256 MiB device: %d", before)
	}
	if _, err := writeFile(filepath.Join(dev.Path, "data"), 64<<20); err != nil {
		t.Fatal(err)
	}
	syscall.Sync()
	after, err := m.DeviceFree(dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after > before-60<<20 {
		t.Errorf("DeviceFree after writing 64 MiB: %d, before %d; want at least 60 MiB less", after, before)
	}
	if after > dev.Size-64<<20 {
		t.Errorf("DeviceFree after writing 64 MiB: %d, above the quota's headroom %d", after, dev.Size-64<<20)
	}
}
