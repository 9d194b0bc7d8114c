package primitives

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/testutil"
)

// Root tests: the storage managers on real btrfs pools over loop devices,
// attacked as a tenant would through updates (issue 15, finding 1).

// startStorage starts a storage module on hosted disks in a fresh
// directory and stops it (detaching its loop devices) in t.Cleanup.
func startStorage(t testing.TB, disks ...storage.HostedDisk) *storage.Module {
	t.Helper()
	testutil.RequireRoot(t)
	for _, b := range []string{"mkfs.btrfs", "btrfs", "losetup", "blkid"} {
		testutil.RequireBinary(t, b)
	}
	dir := t.TempDir()
	cfg := storage.Config{Root: filepath.Join(dir, "mnt"), DataDir: filepath.Join(dir, "data"), Prefix: "tg-", Disks: disks, CacheStep: 64 << 20}
	st, err := storage.New(cfg, storage.HostSystem(), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("closing storage: %v", err)
		}
		// Last resort when the test failed half way: only what this test
		// made, by its backing files.
		for i := range disks {
			file := filepath.Join(cfg.DataDir, fmt.Sprintf("tg-disk%d.img", i))
			out, _ := exec.Command("losetup", "-j", file).Output()
			if dev, _, ok := strings.Cut(string(out), ":"); ok {
				exec.Command("umount", "-l", dev).Run()
				exec.Command("losetup", "-d", dev).Run()
			}
		}
	})
	if err := st.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

// workload is workload name of type typ with data, in a deployment of twin.
func workload(twin uint32, name string, typ gridtypes.WorkloadType, data any) *provision.Workload {
	d := &gridtypes.Deployment{TwinID: twin, ContractID: 1}
	b, _ := json.Marshal(data)
	return &provision.Workload{Workload: gridtypes.Workload{Name: name, Type: typ, Data: b}, ID: d.WorkloadID(name), Deployment: d}
}

// refused checks that err is an unchanged (the old configuration runs on)
// ErrNoSpace-or-invalid refusal mentioning want.
func refused(t *testing.T, what string, err error, want string) {
	t.Helper()
	var unchanged *provision.UnchangedError
	if !errors.As(err, &unchanged) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: got %v, want refused and unchanged with %q", what, err, want)
	}
}

// A namespace updated far beyond its device (1 MiB to 1 TiB on a small
// HDD) is refused and keeps its size: it cannot fill the device the other
// tenants' namespaces share. So is a growth that the device's size would
// hold but its file system does not really have free, a shrink, and a size
// of 0 (unlimited). Another tenant's namespace still gets the device's room
// afterwards.
func TestZDBGrowthChecked(t *testing.T) {
	const mib = 1 << 20
	st := startStorage(t, storage.HostedDisk{Type: storage.SSD, Size: 1 << 30}, storage.HostedDisk{Type: storage.HDD, Size: 256 * mib})
	log := testutil.Logger(t)
	m, err := NewZDBManager(ZDBConfig{Port: 9900}, st, zdb.NewServer(zdb.ServerConfig{}, log), func() []string { return []string{"127.0.0.1"} }, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ctx := context.Background()
	alice := workload(1, "db", gridtypes.ZDBType, gridtypes.ZDB{Size: mib, Mode: "user"})
	if _, err := m.Provision(ctx, alice); err != nil {
		t.Fatal(err)
	}
	devs, err := st.Devices()
	if err != nil || len(devs) != 1 {
		t.Fatalf("devices: %+v, %v", devs, err)
	}
	dev := devs[0]
	avail, err := st.DeviceFree(dev.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("device %s: %d bytes, %d really free", dev.ID, dev.Size, avail)
	if avail == 0 || avail > dev.Size {
		t.Fatalf("DeviceFree = %d, want within the device's %d bytes", avail, dev.Size)
	}
	size := func() uint64 {
		t.Helper()
		s, ok := m.find(string(alice.ID))
		if !ok {
			t.Fatal("alice's namespace is gone")
		}
		info, err := s.Namespace(string(alice.ID))
		if err != nil {
			t.Fatal(err)
		}
		return info.MaxSize
	}
	for _, tt := range []struct {
		name string
		size uint64
		want string
	}{
		{"1 TiB", 1 << 40, "claim"},
		{"2^64-1", 1<<64 - 1, "claim"},
		{"the whole device", dev.Size, "really"},
		{"shrunk", mib / 2, "cannot shrink"},
		{"unlimited", 0, "0 would be unlimited"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			upd := workload(1, "db", gridtypes.ZDBType, gridtypes.ZDB{Size: tt.size, Mode: "user"})
			_, err := m.Update(ctx, upd)
			refused(t, "update", err, tt.want)
			if got := size(); got != mib {
				t.Errorf("size after the refused update: got %d, want %d", got, mib)
			}
		})
	}
	// A growth that fits goes through.
	if _, err := m.Update(ctx, workload(1, "db", gridtypes.ZDBType, gridtypes.ZDB{Size: 2 * mib, Mode: "user"})); err != nil {
		t.Fatalf("growing to 2 MiB: %v", err)
	}
	if got := size(); got != 2*mib {
		t.Errorf("size after growing: got %d, want %d", got, 2*mib)
	}
	// A new namespace is held to what is really free as well, though
	// the device's size would hold it (its namespaces claim 2 MiB of it).
	carol := workload(3, "db", gridtypes.ZDBType, gridtypes.ZDB{Size: avail, Mode: "user"})
	if _, err := m.Provision(ctx, carol); !errors.Is(err, storage.ErrNoSpace) {
		t.Errorf("a namespace of all that is really free next to alice's: got %v, want ErrNoSpace", err)
	}
	// Another tenant gets the rest of what is really free.
	bob := workload(2, "db", gridtypes.ZDBType, gridtypes.ZDB{Size: avail - 2*mib - mib, Mode: "user"})
	if _, err := m.Provision(ctx, bob); err != nil {
		t.Fatalf("another tenant's namespace after the refused updates: %v", err)
	}
}

// poolFree is what the pool holding path has not promised, and what its
// file system really has free.
func poolFree(t *testing.T, st *storage.Module, path string) (unpromised, really uint64) {
	t.Helper()
	for _, p := range st.Pools() {
		if strings.Contains(path, "/"+p.Name+"/") {
			var fs syscall.Statfs_t
			if err := syscall.Statfs(path, &fs); err != nil {
				t.Fatal(err)
			}
			return p.Size - p.Used, fs.Bavail * uint64(fs.Bsize)
		}
	}
	t.Fatalf("no pool holds %s", path)
	return 0, 0
}

// Volumes and disks updated beyond their pool are refused and keep their
// size: beyond what the pool has promised to nobody (1 TiB, 2^64-1), and
// beyond what its file system really has free though the pool would
// promise it. Shrinking is refused as before. Another tenant's volume or
// disk still fits afterwards.
func TestVolumeAndDiskGrowthChecked(t *testing.T) {
	const mib = 1 << 20
	st := startStorage(t, storage.HostedDisk{Type: storage.SSD, Size: 1 << 30})
	ctx := context.Background()
	vm := &VolumeManager{Storage: st}
	dm := &ZMountManager{Storage: st}
	for _, tt := range []struct {
		name string
		mgr  provision.Updater
		prov provision.Manager
		typ  gridtypes.WorkloadType
		data func(size uint64) any
		size func(name string) (size uint64, path string)
	}{
		{"volume", vm, vm, gridtypes.VolumeType, func(n uint64) any { return gridtypes.Volume{Size: n} }, func(name string) (uint64, string) {
			v, err := st.VolumeLookup(name)
			if err != nil {
				t.Fatal(err)
			}
			return v.Size, v.Path
		}},
		{"zmount", dm, dm, gridtypes.ZMountType, func(n uint64) any { return gridtypes.ZMount{Size: n} }, func(name string) (uint64, string) {
			d, err := st.DiskLookup(name)
			if err != nil {
				t.Fatal(err)
			}
			return d.Size, d.Path
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			alice := workload(1, tt.name, tt.typ, tt.data(mib))
			if _, err := tt.prov.Provision(ctx, alice); err != nil {
				t.Fatal(err)
			}
			_, path := tt.size(string(alice.ID))
			unpromised, really := poolFree(t, st, path)
			t.Logf("pool: %d bytes unpromised, %d really free", unpromised, really)
			if really >= unpromised {
				t.Fatalf("the file system has %d bytes free, not less than the %d the pool has not promised: no case for the real check", really, unpromised)
			}
			for _, c := range []struct {
				name string
				size uint64
				want string
			}{
				{"1 TiB", 1 << 40, "no space"},
				{"2^64-1", 1<<64 - 1, "no space"},
				{"all the pool has not promised", mib + unpromised, "really free"},
				{"shrunk", mib / 2, "cannot shrink"},
			} {
				_, err := tt.mgr.Update(ctx, workload(1, tt.name, tt.typ, tt.data(c.size)))
				refused(t, c.name, err, c.want)
				if got, _ := tt.size(string(alice.ID)); got != mib {
					t.Errorf("%s: size after the refused update: got %d, want %d", c.name, got, mib)
				}
			}
			if _, err := tt.mgr.Update(ctx, workload(1, tt.name, tt.typ, tt.data(2*mib))); err != nil {
				t.Fatalf("growing to 2 MiB: %v", err)
			}
			bob := workload(2, tt.name, tt.typ, tt.data(64*mib))
			if _, err := tt.prov.Provision(ctx, bob); err != nil {
				t.Fatalf("another tenant after the refused updates: %v", err)
			}
			for _, w := range []*provision.Workload{alice, bob} {
				if err := tt.prov.Deprovision(ctx, w); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
