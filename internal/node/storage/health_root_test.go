package storage

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Real loop devices and btrfs: a hosted disk file truncated to 0 or removed
// while its pool is mounted is found by Check, the other pool keeps its
// data, and the next start neither grows nor makes the file again: its pool
// is shown failed with the reason.
func TestDyingHostedDisk(t *testing.T) {
	tests := []struct {
		name      string
		fault     func(file string) error
		wantCheck string
		wantStart string
	}{
		{"truncated to 0", func(f string) error { return os.Truncate(f, 0) }, "shrank from 1073741824 to", "shrank to"},
		{"removed", os.Remove, "is gone", "is missing; not made again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireKernel(t)
			cfg := hostedConfig(t, SSD, SSD)
			m, err := New(cfg, HostSystem(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = m.Close() })
			if err := m.Start(t.Context()); err != nil {
				t.Fatal(err)
			}
			a, err := m.VolumeCreate("a", 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			b, err := m.VolumeCreate("b", 32<<20)
			if err != nil {
				t.Fatal(err)
			}
			pa, pb := poolOf(t, m, a.Path), poolOf(t, m, b.Path)
			if pa.Name == pb.Name {
				t.Fatalf("both volumes on %s, want them on the two pools", pa.Name)
			}
			keep, err := writeFile(filepath.Join(b.Path, "keep"), 8192)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Check(); len(got) != 0 {
				t.Fatalf("Check on healthy pools: got %+v, want none failed", got)
			}
			var file string
			for i := range cfg.Disks {
				f := diskFile(m, i)
				out, _ := exec.Command("losetup", "-j", f).Output()
				if dev, _, _ := strings.Cut(string(out), ":"); dev != "" && m.poolDev(pa.Name) == dev {
					file = f
				}
			}
			if file == "" {
				t.Fatal("no disk file under pool a")
			}
			if err := tt.fault(file); err != nil {
				t.Fatal(err)
			}
			got := m.Check()
			if len(got) != 1 || got[0].Name != pa.Name || !strings.Contains(got[0].Broken, tt.wantCheck) {
				t.Fatalf("Check after the disk file was %s: got %+v, want %s failed with %q", tt.name, got, pa.Name, tt.wantCheck)
			}
			if _, err := m.VolumeLookup("a"); !errors.Is(err, ErrPoolFailed) {
				t.Errorf("VolumeLookup of a volume on the failed pool: got %v, want ErrPoolFailed", err)
			}
			c, err := m.VolumeCreate("c", 16<<20)
			if err != nil || poolOf(t, m, c.Path).Name != pb.Name {
				t.Errorf("VolumeCreate after the fault = %+v, %v; want it on %s", c, err, pb.Name)
			}
			_ = m.Close() // unmounting a pool whose disk is gone may fail: cleanup catches it
			cleanLeftovers(t, cfg.Root, cfg.DataDir)

			m2 := startModule(t, cfg)
			var failed PoolInfo
			for _, p := range m2.Pools() {
				if p.Name == pa.Name {
					failed = p
				}
			}
			if !strings.Contains(failed.Broken, tt.wantStart) {
				t.Errorf("pool %s at the next start: got %+v, want failed with %q", pa.Name, failed, tt.wantStart)
			}
			// btrfs writes past the cut extend the file again, but never to
			// its size: the next start must not grow it.
			if st, err := os.Stat(file); err == nil && st.Size() >= int64(gib) {
				t.Errorf("disk file after the next start: %d bytes, want it left smaller than its %d", st.Size(), gib)
			}
			if got, err := os.ReadFile(filepath.Join(b.Path, "keep")); err != nil || !bytes.Equal(got, keep) {
				t.Errorf("data on the healthy pool after restart: %v, want it intact", err)
			}
			if !m2.Existing() {
				t.Errorf("Existing after restart: got false, want true")
			}
		})
	}
}

// A block device (not a hosted file) that shrinks under its pool: the loop
// device's backing file is truncated to half and its size re-read
// (losetup -c), as a disk that reports less capacity.
func TestShrunkDevice(t *testing.T) {
	requireKernel(t)
	dev, file := losetupFile(t, 512<<20)
	cfg := hostedConfig(t)
	cfg.Devices = []string{dev}
	m := startModule(t, cfg)
	if got := m.Check(); len(got) != 0 {
		t.Fatalf("Check on a healthy pool: got %+v", got)
	}
	if err := os.Truncate(file, 256<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("losetup", "-c", dev).CombinedOutput(); err != nil {
		t.Fatalf("losetup -c: %v: %s", err, out)
	}
	got := m.Check()
	if len(got) != 1 || !strings.Contains(got[0].Broken, "shrank from 536870912 to 268435456 bytes") {
		t.Fatalf("Check after the device shrank: got %+v, want the pool failed naming both sizes", got)
	}
}
