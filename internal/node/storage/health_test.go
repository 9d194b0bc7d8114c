package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/btrfs"
)

// startFake starts a module with hosted disks of the given types (1 GiB) on
// the fake system.
func startFake(t *testing.T, root string, fs *fakeSys, recreate bool, types ...DeviceType) *Module {
	t.Helper()
	cfg := Config{Root: filepath.Join(root, "mnt"), DataDir: filepath.Join(root, "data"), Prefix: "n1-",
		CacheStep: 64 << 20, RecreateMissing: recreate}
	for _, ty := range types {
		cfg.Disks = append(cfg.Disks, HostedDisk{Type: ty, Size: gib})
	}
	m, err := New(cfg, fs.system(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// poolOfDisk returns the pool whose hosted file is disk i.
func poolOfDisk(t *testing.T, m *Module, i int) *pool {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	want := fmt.Sprintf("%sdisk%d.img", m.cfg.Prefix, i)
	for _, p := range m.pools {
		if filepath.Base(p.backing) == want {
			return p
		}
	}
	t.Fatalf("no pool on %s", want)
	return nil
}

func diskFile(m *Module, i int) string {
	return filepath.Join(m.cfg.DataDir, fmt.Sprintf("%sdisk%d.img", m.cfg.Prefix, i))
}

// Each fault is injected under one of two HDD pools; Check must find that
// pool failed with the reason, leave the other healthy, and from then on
// the failed pool gets no new zdb device, its device is not listed and
// looking it up fails with ErrPoolFailed.
func TestCheckFindsFailingPool(t *testing.T) {
	tests := []struct {
		name   string
		inject func(t *testing.T, fs *fakeSys, m *Module, p *pool)
		want   string
	}{
		{"disk file truncated", func(t *testing.T, _ *fakeSys, m *Module, _ *pool) {
			if err := os.Truncate(diskFile(m, 0), 0); err != nil {
				t.Fatal(err)
			}
		}, "shrank from 1073741824 to 0 bytes"},
		{"disk file removed", func(t *testing.T, _ *fakeSys, m *Module, _ *pool) {
			if err := os.Remove(diskFile(m, 0)); err != nil {
				t.Fatal(err)
			}
		}, "is gone"},
		{"device shrank", func(_ *testing.T, fs *fakeSys, _ *Module, p *pool) {
			fs.mu.Lock()
			d := fs.disks[p.dev]
			d.Size /= 2
			fs.disks[p.dev] = d
			fs.mu.Unlock()
		}, "shrank from 1073741824 to 536870912 bytes"},
		{"device vanished", func(_ *testing.T, fs *fakeSys, _ *Module, p *pool) {
			fs.mu.Lock()
			delete(fs.disks, p.dev)
			fs.mu.Unlock()
		}, "is gone"},
		{"file system read-only", func(_ *testing.T, fs *fakeSys, _ *Module, p *pool) {
			fs.mu.Lock()
			fs.ro[p.path] = true
			fs.mu.Unlock()
		}, "read-only"},
		{"write probe fails", func(t *testing.T, _ *fakeSys, _ *Module, p *pool) {
			// A directory where the probe file goes: the write fails.
			if err := os.Remove(filepath.Join(p.path, probeName)); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(filepath.Join(p.path, probeName), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "write probe"},
		{"btrfs counts new I/O errors", func(_ *testing.T, fs *fakeSys, _ *Module, p *pool) {
			fs.mu.Lock()
			fs.stats[p.path] = btrfs.DeviceStats{WriteErrs: 2, CorruptionErrs: 1}
			fs.mu.Unlock()
		}, "3 new device errors"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			fs := newFakeSys(root)
			m := startFake(t, root, fs, false, HDD, HDD)
			if got := m.Check(); len(got) != 0 {
				t.Fatalf("first check on healthy pools: got failed %+v, want none", got)
			}
			bad, good := poolOfDisk(t, m, 0), poolOfDisk(t, m, 1)
			tt.inject(t, fs, m, bad)
			got := m.Check()
			if len(got) != 1 || got[0].Name != bad.name || !strings.Contains(got[0].Broken, tt.want) {
				t.Fatalf("Check after the fault: got %+v, want pool %s failed with %q", got, bad.name, tt.want)
			}
			if again := m.Check(); len(again) != 0 {
				t.Errorf("second Check: got %+v, want nothing new", again)
			}
			for _, p := range m.Pools() {
				if p.Name == good.name && p.Broken != "" {
					t.Errorf("healthy pool %s shown failed: %s", p.Name, p.Broken)
				}
			}
			d, err := m.DeviceAllocate(gib / 2)
			if err != nil || d.Pool != good.name {
				t.Errorf("DeviceAllocate = %+v, %v; want it on the healthy pool %s", d, err, good.name)
			}
			_, err = m.DeviceAllocate(gib / 2)
			if err == nil || !strings.Contains(err.Error(), "pool "+bad.name+" failed") {
				t.Errorf("DeviceAllocate with only the failed pool left: got %v, want an error naming it", err)
			}
		})
	}
}

// A volume and a disk on a pool that fails: lookups fail with
// ErrPoolFailed naming the pool, OnPool lists them, and a new volume goes
// elsewhere or fails naming the failed pool.
func TestFailedPoolLookups(t *testing.T) {
	root := t.TempDir()
	fs := newFakeSys(root)
	m := startFake(t, root, fs, false, SSD)
	if _, err := m.VolumeCreate("v", 10<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DiskCreate("d", 10<<20); err != nil {
		t.Fatal(err)
	}
	p := poolOfDisk(t, m, 0)
	if err := os.Remove(diskFile(m, 0)); err != nil {
		t.Fatal(err)
	}
	m.Check()
	on := m.OnPool(p.name)
	if fmt.Sprint(on.Volumes) != "[v]" || fmt.Sprint(on.VDisks) != "[d]" {
		t.Errorf("OnPool = %+v, want volume v and disk d", on)
	}
	if _, err := m.VolumeLookup("v"); !errors.Is(err, ErrPoolFailed) || !strings.Contains(err.Error(), p.name) {
		t.Errorf("VolumeLookup on the failed pool: got %v, want ErrPoolFailed naming %s", err, p.name)
	}
	if _, err := m.DiskLookup("d"); !errors.Is(err, ErrPoolFailed) {
		t.Errorf("DiskLookup on the failed pool: got %v, want ErrPoolFailed", err)
	}
	_, err := m.VolumeLookup("other")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "pool "+p.name+" failed") {
		t.Errorf("VolumeLookup of an unknown volume: got %v, want ErrNotFound naming the failed pool", err)
	}
	_, err = m.VolumeCreate("w", 10<<20)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "pool "+p.name+" failed: disk file") {
		t.Errorf("VolumeCreate with the only SSD failed: got %v, want an error naming the failed pool", err)
	}
}

// A hosted disk recorded in the data dir that is missing or shrank at the
// next start is not made again: its pool is shown failed, the other pool
// comes up, Existing reports the node had pools. With RecreateMissing it
// is made again, empty.
func TestMissingHostedDiskNotRecreated(t *testing.T) {
	tests := []struct {
		name   string
		fault  func(file string) error
		want   string
		newLen int64 // disk file size after the refused start
	}{
		{"removed", os.Remove, "is missing; not made again", -1},
		{"truncated", func(f string) error { return os.Truncate(f, 0) }, "shrank to 0 bytes", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			fs := newFakeSys(root)
			m := startFake(t, root, fs, false, SSD, HDD)
			if m.Existing() {
				t.Errorf("Existing on the first start: got true, want false")
			}
			hdd := poolOfDisk(t, m, 1).name
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			file := diskFile(m, 1)
			if err := tt.fault(file); err != nil {
				t.Fatal(err)
			}
			// The fake keeps what it formatted: the SSD is adopted again.
			m = startFake(t, root, fs, false, SSD, HDD)
			var got PoolInfo
			for _, p := range m.Pools() {
				if p.Name == hdd {
					got = p
				}
			}
			if !strings.Contains(got.Broken, tt.want) || got.Type != HDD {
				t.Errorf("pool %s after the disk file was %s: got %+v, want failed with %q", hdd, tt.name, got, tt.want)
			}
			if len(m.Pools()) != 2 {
				t.Errorf("pools = %+v, want the healthy SSD and the failed HDD", m.Pools())
			}
			st, err := os.Stat(file)
			switch {
			case tt.newLen < 0 && !errors.Is(err, os.ErrNotExist):
				t.Errorf("missing disk file after start: got %v, %v; want still missing", st, err)
			case tt.newLen >= 0 && (err != nil || st.Size() != tt.newLen):
				t.Errorf("shrunk disk file after start: got %v, %v; want %d bytes", st, err, tt.newLen)
			}
			if !m.Existing() {
				t.Errorf("Existing after a restart: got false, want true")
			}
			if _, err := m.DeviceAllocate(gib / 2); err == nil || !strings.Contains(err.Error(), hdd) {
				t.Errorf("DeviceAllocate with the HDD failed: got %v, want an error naming %s", err, hdd)
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}

			// The fake forgets the file's old content: the HDD recreated is
			// blank again.
			fs.mu.Lock()
			fs.sigs[fs.loops[file]] = blockdev.Signature{}
			fs.mu.Unlock()
			m = startFake(t, root, fs, true, SSD, HDD)
			for _, p := range m.Pools() {
				if p.Broken != "" {
					t.Errorf("with RecreateMissing: pool %s failed: %s", p.Name, p.Broken)
				}
			}
			if st, err := os.Stat(file); err != nil || st.Size() != int64(gib) {
				t.Errorf("recreated disk file: %v, %v; want %d bytes", st, err, gib)
			}
		})
	}
}

// The disk that held the cache (the node's deployments and key) is missing
// at start: Start refuses with ErrCacheLost naming the pool rather than
// making an empty cache elsewhere; with RecreateMissing the farmer gets a
// new empty disk and cache.
func TestCacheLostRefused(t *testing.T) {
	root := t.TempDir()
	fs := newFakeSys(root)
	m := startFake(t, root, fs, false, SSD, HDD)
	cache, _ := m.Cache()
	ssd := poolOfDisk(t, m, 0).name
	if !strings.Contains(cache, ssd) {
		t.Fatalf("cache %s, want it on the SSD pool %s", cache, ssd)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(diskFile(m, 0)); err != nil {
		t.Fatal(err)
	}
	m2, err := New(m.cfg, fs.system(), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = m2.Start(t.Context())
	if !errors.Is(err, ErrCacheLost) || !strings.Contains(err.Error(), "pool "+ssd+", which failed") {
		t.Errorf("Start with the cache's disk missing: got %v, want ErrCacheLost naming %s", err, ssd)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	fs.mu.Lock()
	fs.sigs[fs.loops[diskFile(m, 0)]] = blockdev.Signature{}
	fs.mu.Unlock()
	m3 := startFake(t, root, fs, true, SSD, HDD)
	if c, limited := m3.Cache(); limited || strings.Contains(c, ssd) {
		t.Errorf("cache with RecreateMissing: %s (limited %v), want on the new SSD pool", c, limited)
	}
}
