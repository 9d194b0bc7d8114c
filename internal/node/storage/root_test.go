package storage

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/mount"
	"github.com/zos-go/zos/internal/sys/prealloc"
	"github.com/zos-go/zos/internal/testutil"
)

// Root tests: real loop devices over sparse files in t.TempDir(), real btrfs.
// Each test removes what it made in t.Cleanup, also when it fails.

func requireKernel(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, b := range []string{"mkfs.btrfs", "btrfs", "losetup", "blkid"} {
		testutil.RequireBinary(t, b)
	}
}

// hostedConfig is a node with the given hosted disks (1 GiB each unless
// sized), rooted in a fresh temporary directory.
func hostedConfig(t testing.TB, types ...DeviceType) Config {
	t.Helper()
	dir := t.TempDir()
	cfg := Config{
		Root:      filepath.Join(dir, "mnt"),
		DataDir:   filepath.Join(dir, "data"),
		Prefix:    "t-",
		CacheStep: 64 << 20,
	}
	for _, ty := range types {
		cfg.Disks = append(cfg.Disks, HostedDisk{Type: ty, Size: gib})
	}
	leftovers(t, cfg.Root, cfg.DataDir)
	return cfg
}

// leftovers registers a last-resort cleanup: anything still mounted under
// root is unmounted and any loop device over a file in dataDir is detached,
// so a failing test leaves nothing behind.
func leftovers(t testing.TB, root, dataDir string) {
	t.Cleanup(func() { cleanLeftovers(t, root, dataDir) })
}

func cleanLeftovers(t testing.TB, root, dataDir string) {
	for _, mp := range mountsUnder(root) {
		t.Logf("cleanup: unmounting leftover %s", mp)
		_ = exec.Command("umount", "-l", mp).Run()
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, "*"))
	for _, f := range files {
		detachFile(t, f)
	}
}

func detachFile(t testing.TB, file string) {
	out, _ := exec.Command("losetup", "-j", file).Output()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok && dev != "" {
			t.Logf("cleanup: detaching leftover %s", dev)
			_ = exec.Command("losetup", "-d", dev).Run()
		}
	}
}

func mountsUnder(root string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if mp, ok := mount.MountPoint(sc.Text()); ok && strings.HasPrefix(mp, root+"/") {
			out = append(out, mp)
		}
	}
	// deepest first
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func startModule(t testing.TB, cfg Config) *Module {
	t.Helper()
	m, err := New(cfg, HostSystem(), testutil.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if err := m.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return m
}

func poolOf(t testing.TB, m *Module, path string) PoolInfo {
	t.Helper()
	for _, p := range m.Pools() {
		if strings.HasPrefix(path, filepath.Join(m.cfg.Root, p.Name)+"/") {
			return p
		}
	}
	t.Fatalf("no pool holds %s", path)
	return PoolInfo{}
}

func writeFile(path string, n int) ([]byte, error) {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b, os.WriteFile(path, b, 0o644)
}

func TestLifecycle(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, HDD)
	m := startModule(t, cfg)

	pools := m.Pools()
	if len(pools) != 2 {
		t.Fatalf("got %d pools, want 2: %+v", len(pools), pools)
	}
	types := map[DeviceType]int{}
	for _, p := range pools {
		types[p.Type]++
		if p.Broken != "" || p.Size < gib*9/10 {
			t.Errorf("pool %+v: want healthy and about 1 GiB", p)
		}
	}
	if types[SSD] != 1 || types[HDD] != 1 {
		t.Errorf("got types %v, want one ssd and one hdd", types)
	}
	if got := m.Total(SSD); got < gib*9/10 {
		t.Errorf("Total(ssd) = %d, want about 1 GiB", got)
	}

	cache, limited := m.Cache()
	if limited || cache == "" || poolOf(t, m, cache).Type != SSD {
		t.Errorf("Cache() = %q, %v; want a directory on the ssd pool, not limited", cache, limited)
	}
	if got := m.CacheReserved(); got != cfg.CacheStep {
		t.Errorf("CacheReserved() = %d, want %d", got, cfg.CacheStep)
	}
	if err := os.WriteFile(filepath.Join(cache, "state"), []byte("x"), 0o600); err != nil {
		t.Errorf("cache not writable: %v", err)
	}
	// The cache quota grows by a step at 60% use, and shrinks back.
	if _, err := writeFile(filepath.Join(cache, "fill"), 48<<20); err != nil {
		t.Fatalf("filling the cache: %v", err)
	}
	exec.Command("btrfs", "filesystem", "sync", cache).Run()
	if err := m.AdjustCache(); err != nil || m.CacheReserved() != 2*cfg.CacheStep {
		t.Errorf("cache quota at 75%% use = %d, %v; want %d", m.CacheReserved(), err, 2*cfg.CacheStep)
	}
	os.Remove(filepath.Join(cache, "fill"))
	exec.Command("btrfs", "filesystem", "sync", cache).Run()
	if err := m.AdjustCache(); err != nil || m.CacheReserved() != cfg.CacheStep {
		t.Errorf("cache quota after emptying = %d, %v; want %d", m.CacheReserved(), err, cfg.CacheStep)
	}

	// Volumes.
	v, err := m.VolumeCreate("162-1234-vol1", 16<<20)
	if err != nil {
		t.Fatalf("VolumeCreate: %v", err)
	}
	if poolOf(t, m, v.Path).Type != SSD || v.Size != 16<<20 {
		t.Errorf("volume %+v: want 16 MiB on ssd", v)
	}
	if _, err := m.VolumeCreate("rootfs:162-1234-vm", 8<<20); err != nil {
		t.Errorf("VolumeCreate rootfs: %v", err)
	}
	if again, err := m.VolumeCreate("162-1234-vol1", 16<<20); err != nil || again.Path != v.Path {
		t.Errorf("VolumeCreate same again = %+v, %v; want the existing volume", again, err)
	}
	if _, err := m.VolumeCreate("162-1234-vol1", 32<<20); !errors.Is(err, ErrExists) {
		t.Errorf("VolumeCreate other size: got %v, want ErrExists", err)
	}
	// The quota is enforced.
	if _, err := writeFile(filepath.Join(v.Path, "big"), 32<<20); err == nil || !strings.Contains(err.Error(), "disk quota exceeded") {
		t.Errorf("writing 32 MiB into a 16 MiB volume: got %v, want disk quota exceeded", err)
	}
	os.Remove(filepath.Join(v.Path, "big"))
	if _, err := m.VolumeUpdate("162-1234-vol1", 8<<20); !errors.Is(err, ErrInvalid) {
		t.Errorf("shrinking: got %v, want ErrInvalid", err)
	}
	v, err = m.VolumeUpdate("162-1234-vol1", 64<<20)
	if err != nil || v.Size != 64<<20 {
		t.Fatalf("VolumeUpdate = %+v, %v; want 64 MiB", v, err)
	}
	if _, err := writeFile(filepath.Join(v.Path, "big"), 32<<20); err != nil {
		t.Errorf("writing 32 MiB after growing to 64 MiB: %v", err)
	}
	exec.Command("sync").Run()
	if v, err = m.VolumeLookup("162-1234-vol1"); err != nil || v.Usage < 30<<20 {
		t.Errorf("VolumeLookup = %+v, %v; want usage about 32 MiB", v, err)
	}
	if list, err := m.VolumeList(); err != nil || len(list) != 2 {
		t.Errorf("VolumeList = %+v, %v; want 2 volumes", list, err)
	}
	if err := m.VolumeDelete("rootfs:162-1234-vm"); err != nil {
		t.Errorf("VolumeDelete: %v", err)
	}
	if _, err := m.VolumeLookup("rootfs:162-1234-vm"); !errors.Is(err, ErrNotFound) {
		t.Errorf("lookup after delete: got %v, want ErrNotFound", err)
	}
	if err := m.VolumeDelete("rootfs:162-1234-vm"); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete twice: got %v, want ErrNotFound", err)
	}

	// Virtual disks.
	d, err := m.DiskCreate("162-1234-disk", 64<<20)
	if err != nil {
		t.Fatalf("DiskCreate: %v", err)
	}
	if poolOf(t, m, d.Path).Type != SSD {
		t.Errorf("disk %s not on ssd", d.Path)
	}
	if st, err := os.Stat(d.Path); err != nil || st.Size() != 64<<20 {
		t.Errorf("disk file: %v, %v; want 64 MiB", st, err)
	}
	if nocow, err := prealloc.NoCOW(d.Path); err != nil || !nocow {
		t.Errorf("disk NOCOW = %v, %v; want true", nocow, err)
	}
	img := filepath.Join(t.TempDir(), "image.raw")
	data, err := writeFile(img, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DiskWrite("162-1234-disk", img); err != nil {
		t.Fatalf("DiskWrite: %v", err)
	}
	if got := readHead(t, d.Path, len(data)); !bytes.Equal(got, data) {
		t.Errorf("disk does not start with the image")
	}
	// A disk that carries a file system is not overwritten.
	if _, err := exec.LookPath("mkfs.ext4"); err == nil {
		fsimg := filepath.Join(t.TempDir(), "fs.raw")
		if err := os.WriteFile(fsimg, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		os.Truncate(fsimg, 8<<20)
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", fsimg).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v: %s", err, out)
		}
		if err := m.DiskWrite("162-1234-disk", fsimg); err != nil {
			t.Fatalf("DiskWrite fs image over raw data: %v", err)
		}
		if err := m.DiskWrite("162-1234-disk", img); err != nil {
			t.Fatalf("DiskWrite raw over fs: %v", err)
		}
		if sig, _ := (blockdev.Blkid{}).Probe(d.Path); sig.Type != "ext4" {
			t.Errorf("disk signature after second write = %+v, want ext4 kept", sig)
		}
	}
	big := filepath.Join(t.TempDir(), "big.raw")
	os.WriteFile(big, nil, 0o644)
	os.Truncate(big, 65<<20)
	if err := m.DiskWrite("162-1234-disk", big); !errors.Is(err, ErrInvalid) {
		t.Errorf("DiskWrite image larger than disk: got %v, want ErrInvalid", err)
	}
	if d, err = m.DiskResize("162-1234-disk", 128<<20); err != nil || d.Size != 128<<20 {
		t.Errorf("DiskResize = %+v, %v", d, err)
	}
	if st, _ := os.Stat(d.Path); st == nil || st.Size() != 128<<20 {
		t.Errorf("disk file after resize: %v", st)
	}
	if _, err := m.DiskResize("162-1234-disk", 1<<20); !errors.Is(err, ErrInvalid) {
		t.Errorf("shrinking disk: got %v, want ErrInvalid", err)
	}
	if got, err := m.DiskLookup("162-1234-disk"); err != nil || got.Size != 128<<20 {
		t.Errorf("DiskLookup = %+v, %v", got, err)
	}
	if err := m.DiskDelete("162-1234-disk"); err != nil {
		t.Errorf("DiskDelete: %v", err)
	}
	if _, err := os.Stat(d.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("disk file after delete: %v", err)
	}
	if _, err := m.DiskLookup("162-1234-disk"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DiskLookup after delete: got %v, want ErrNotFound", err)
	}

	// zdb devices: one per HDD.
	dev, err := m.DeviceAllocate(256 << 20)
	if err != nil {
		t.Fatalf("DeviceAllocate: %v", err)
	}
	if p := poolOf(t, m, dev.Path); p.Type != HDD || p.Name != dev.Pool || dev.ID != dev.Pool {
		t.Errorf("device %+v: want on the hdd pool, id = pool", dev)
	}
	if _, err := m.DeviceAllocate(1 << 20); !errors.Is(err, ErrNoSpace) {
		t.Errorf("second device on the only HDD: got %v, want ErrNoSpace", err)
	}
	if got, err := m.DeviceLookup(dev.ID); err != nil || got != dev {
		t.Errorf("DeviceLookup = %+v, %v; want %+v", got, err, dev)
	}
	if list, err := m.Devices(); err != nil || len(list) != 1 {
		t.Errorf("Devices = %+v, %v", list, err)
	}

	// Allocation shows in the pools listing.
	for _, p := range m.Pools() {
		want := uint64(256 << 20)
		if p.Type == SSD {
			want = cfg.CacheStep + 64<<20
		}
		if p.Used != want {
			t.Errorf("pool %s (%s) used = %d, want %d", p.Name, p.Type, p.Used, want)
		}
	}

	// Bad input.
	for _, name := range []string{"", "../x", "a/b", "..", ".hidden", "zos-cache", "vdisks", "a b", "a\x00b"} {
		if _, err := m.VolumeCreate(name, 1<<20); !errors.Is(err, ErrInvalid) {
			t.Errorf("VolumeCreate(%q): got %v, want ErrInvalid", name, err)
		}
		if _, err := m.DiskCreate(name, 1<<20); !errors.Is(err, ErrInvalid) {
			t.Errorf("DiskCreate(%q): got %v, want ErrInvalid", name, err)
		}
	}
	if _, err := m.VolumeCreate("zero", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("VolumeCreate size 0: got %v, want ErrInvalid", err)
	}
	if _, err := m.VolumeCreate("huge", 100*gib); !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("VolumeCreate 100 GiB: got %v, want no space, larger than any pool", err)
	}
}

func readHead(t testing.TB, path string, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReboot(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, SSD, HDD)
	m, err := New(cfg, HostSystem(), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	cache, _ := m.Cache()
	vol, err := m.VolumeCreate("vol1", 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	content, err := writeFile(filepath.Join(vol.Path, "data"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := m.DiskCreate("disk1", 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "img")
	raw, _ := writeFile(img, 8192)
	if err := m.DiskWrite("disk1", img); err != nil {
		t.Fatal(err)
	}
	dev, err := m.DeviceAllocate(128 << 20)
	if err != nil {
		t.Fatal(err)
	}
	before := m.Pools()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if mps := mountsUnder(cfg.Root); len(mps) != 0 {
		t.Errorf("still mounted after Close: %v", mps)
	}
	for i := range cfg.Disks {
		out, _ := exec.Command("losetup", "-j", filepath.Join(cfg.DataDir, fmt.Sprintf("t-disk%d.img", i))).Output()
		if len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("still attached after Close: %s", out)
		}
	}

	// "Reboot": a new module that knows nothing.
	m2 := startModule(t, cfg)
	after := m2.Pools()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("pools after reboot:\n got %+v\nwant %+v", after, before)
	}
	if c, _ := m2.Cache(); c != cache {
		t.Errorf("cache after reboot = %s, want %s", c, cache)
	}
	if b, err := os.ReadFile(filepath.Join(cache, "..", ".zos-pool.json")); err != nil || !bytes.Contains(b, []byte(`"ssd"`)) {
		t.Errorf("pool marker: %s, %v", b, err)
	}
	v, err := m2.VolumeLookup("vol1")
	if err != nil || v.Size != 32<<20 || v.Path != vol.Path {
		t.Errorf("volume after reboot = %+v, %v; want %+v", v, err, vol)
	}
	if b, err := os.ReadFile(filepath.Join(vol.Path, "data")); err != nil || !bytes.Equal(b, content) {
		t.Errorf("volume data after reboot differs (%v)", err)
	}
	d, err := m2.DiskLookup("disk1")
	if err != nil || d != disk {
		t.Errorf("disk after reboot = %+v, %v; want %+v", d, err, disk)
	}
	if got := readHead(t, disk.Path, len(raw)); !bytes.Equal(got, raw) {
		t.Errorf("disk data after reboot differs")
	}
	if got, err := m2.DeviceLookup(dev.ID); err != nil || got != dev {
		t.Errorf("device after reboot = %+v, %v; want %+v", got, err, dev)
	}
}

// losetupFile makes a sparse file and attaches it; the test detaches it.
func losetupFile(t testing.TB, size int64) (dev, file string) {
	t.Helper()
	file = filepath.Join(t.TempDir(), "foreign.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev = strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", dev).Run() })
	return dev, file
}

func TestForeignDiskUntouched(t *testing.T) {
	requireKernel(t)
	testutil.RequireBinary(t, "mkfs.ext4")
	dev, _ := losetupFile(t, 256<<20)
	if out, err := exec.Command("mkfs.ext4", "-q", "-L", "farmer-data", dev).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	sig, err := (blockdev.Blkid{}).Probe(dev)
	if err != nil || sig.Type != "ext4" {
		t.Fatalf("probe: %+v, %v", sig, err)
	}
	// A btrfs of another node (other prefix) is foreign too.
	other, _ := losetupFile(t, 256<<20)
	if out, err := exec.Command("mkfs.btrfs", "-q", "-L", "n2-zos-0123456789ab", other).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.btrfs: %v: %s", err, out)
	}
	cfg := hostedConfig(t)
	cfg.Devices = []string{dev, other}
	m := startModule(t, cfg)
	if p := m.Pools(); len(p) != 0 {
		t.Errorf("pools = %+v, want none", p)
	}
	ign := m.Ignored()
	if len(ign) != 2 || !strings.Contains(ign[0].Reason, "ext4") || !strings.Contains(ign[1].Reason, "btrfs") {
		t.Errorf("ignored = %+v, want both disks with their file system", ign)
	}
	if after, _ := (blockdev.Blkid{}).Probe(dev); after != sig {
		t.Errorf("foreign disk changed: %+v, want %+v", after, sig)
	}
	// No pool at all: the cache falls back to a tmpfs and says so.
	cache, limited := m.Cache()
	if !limited || cache == "" {
		t.Errorf("Cache() = %q, %v; want tmpfs, limited", cache, limited)
	}
	if err := os.WriteFile(filepath.Join(cache, "x"), []byte("x"), 0o600); err != nil {
		t.Errorf("tmpfs cache not writable: %v", err)
	}
	if _, err := m.VolumeCreate("v", 1<<20); !errors.Is(err, ErrNoSpace) {
		t.Errorf("VolumeCreate without pools: got %v, want ErrNoSpace", err)
	}
}

func TestFullPool(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, SSD)
	m := startModule(t, cfg)
	// Fill both pools with allocations.
	var made []Volume
	var err error
	for i := 0; i < 20; i++ {
		var v Volume
		if v, err = m.VolumeCreate(fmt.Sprintf("v%d", i), 200<<20); err != nil {
			break
		}
		made = append(made, v)
	}
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "no space") || !strings.Contains(err.Error(), "creating volume") {
		t.Fatalf("filling: got %v, want a no space error naming the operation", err)
	}
	if len(made) < 6 {
		t.Fatalf("only %d volumes of 200 MiB fit on two 1 GiB pools", len(made))
	}
	if _, err := m.DiskCreate("d", 300<<20); !errors.Is(err, ErrNoSpace) {
		t.Errorf("DiskCreate on full pools: got %v, want ErrNoSpace", err)
	}
	// Other volumes stay usable, and freeing space makes room again.
	if _, err := writeFile(filepath.Join(made[0].Path, "f"), 1<<20); err != nil {
		t.Errorf("writing into an existing volume: %v", err)
	}
	if err := m.VolumeDelete(made[1].Name); err != nil {
		t.Fatal(err)
	}
	if _, err := m.VolumeCreate("again", 200<<20); err != nil {
		t.Errorf("VolumeCreate after freeing: %v", err)
	}
	// A vdisk whose preallocation does not fit the real free space gives
	// ErrNoSpace too, and the pool stays usable.
	if err := m.VolumeDelete("again"); err != nil {
		t.Fatal(err)
	}
	for _, v := range made[2:] {
		if err := m.VolumeDelete(v.Name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.DiskCreate("almost-all", gib-cfg.CacheStep-1<<20); !errors.Is(err, ErrNoSpace) {
		t.Errorf("DiskCreate beyond real free space: got %v, want ErrNoSpace", err)
	}
	if _, err := m.DiskCreate("small", 16<<20); err != nil {
		t.Errorf("DiskCreate after a failed one: %v", err)
	}
}

func TestConcurrentVolumes(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, SSD)
	m := startModule(t, cfg)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.VolumeCreate(fmt.Sprintf("162-%d-vol", i), 8<<20); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("VolumeCreate: %v", err)
	}
	list, err := m.VolumeList()
	if err != nil || len(list) != n {
		t.Fatalf("VolumeList: %d volumes, %v; want %d", len(list), err, n)
	}
	var used uint64
	for _, p := range m.Pools() {
		used += p.Used
	}
	if want := n*8<<20 + cfg.CacheStep; used != uint64(want) {
		t.Errorf("allocated %d, want %d", used, want)
	}
	errs = make(chan error, n)
	for _, v := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.VolumeDelete(v.Name); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("VolumeDelete: %v", err)
	}
	if list, _ := m.VolumeList(); len(list) != 0 {
		t.Errorf("%d volumes left", len(list))
	}
}

func TestPulledDisk(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, SSD)
	m := startModule(t, cfg)
	a, err := m.VolumeCreate("a", 128<<20)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.VolumeCreate("b", 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := poolOf(t, m, a.Path), poolOf(t, m, b.Path)
	if pa.Name == pb.Name {
		t.Fatalf("both volumes on %s, want spread over the two pools", pa.Name)
	}
	data, err := writeFile(filepath.Join(b.Path, "keep"), 4096)
	if err != nil {
		t.Fatal(err)
	}
	// Pull the disk under pool a: remove its file.
	var file string
	for i := range cfg.Disks {
		f := filepath.Join(cfg.DataDir, fmt.Sprintf("t-disk%d.img", i))
		out, _ := exec.Command("losetup", "-j", f).Output()
		if dev, _, _ := strings.Cut(string(out), ":"); dev != "" && m.poolDev(pa.Name) == dev {
			file = f
		}
	}
	if file == "" {
		t.Fatal("no disk file for pool a")
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	var broken PoolInfo
	for _, p := range m.Pools() {
		if p.Name == pa.Name {
			broken = p
		}
	}
	if !strings.Contains(broken.Broken, "gone") {
		t.Errorf("pool %s after pulling its disk: %+v, want broken", pa.Name, broken)
	}
	_, err = m.VolumeUpdate("a", 64<<20)
	if err == nil || !strings.Contains(err.Error(), pa.Name) || !strings.Contains(err.Error(), "growing volume a") {
		t.Errorf("growing a volume on the pulled disk: got %v, want an error naming pool and operation", err)
	}
	if got := m.Total(SSD); got != pb.Size {
		t.Errorf("Total(ssd) = %d, want only the healthy pool %d", got, pb.Size)
	}
	// The other pool keeps working and its data is intact.
	c, err := m.VolumeCreate("c", 32<<20)
	if err != nil || poolOf(t, m, c.Path).Name != pb.Name {
		t.Errorf("VolumeCreate after pull = %+v, %v; want on %s", c, err, pb.Name)
	}
	if got, err := os.ReadFile(filepath.Join(b.Path, "keep")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("data of volume b changed (%v)", err)
	}
	_ = testutil.Poll(time.Second, func() (bool, error) {
		_, err := m.VolumeLookup("b")
		return err == nil, err
	})
}

// poolDev returns the device of a pool (tests only).
func (m *Module) poolDev(name string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pools {
		if p.name == name {
			return p.dev
		}
	}
	return ""
}

func TestReadOnlyPool(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, SSD)
	m := startModule(t, cfg)
	cache, _ := m.Cache()
	ro := poolOf(t, m, cache) // the pool that holds the cache turns read-only
	if out, err := exec.Command("mount", "-o", "remount,ro", filepath.Join(cfg.Root, ro.Name)).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v: %s", err, out)
	}
	for _, p := range m.Pools() {
		if p.Name == ro.Name && !strings.Contains(p.Broken, "read-only") {
			t.Errorf("pool %s after turning read-only: %+v, want broken", p.Name, p)
		}
	}
	if err := m.AdjustCache(); err == nil || !strings.Contains(err.Error(), ro.Name) {
		t.Errorf("AdjustCache on a read-only pool: got %v, want an error naming it", err)
	}
	v, err := m.VolumeCreate("v", 8<<20)
	if err != nil || poolOf(t, m, v.Path).Name == ro.Name {
		t.Errorf("VolumeCreate = %+v, %v; want it on the healthy pool", v, err)
	}
}

// TestLeftoversCleaned checks the last-resort cleanup that protects the
// machine when a test fails before Close: a module left running is undone.
func TestLeftoversCleaned(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, HDD)
	m, err := New(cfg, HostSystem(), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := m.VolumeCreate("v", 1<<20); err != nil {
		t.Fatal(err)
	}
	if len(mountsUnder(cfg.Root)) != 2 {
		t.Fatalf("mounts under root: %v, want 2 pools", mountsUnder(cfg.Root))
	}
	cleanLeftovers(t, cfg.Root, cfg.DataDir) // as if the test had failed here
	defer m.Close()                          // stops the cache loop; its devices are gone already
	if mps := mountsUnder(cfg.Root); len(mps) != 0 {
		t.Errorf("still mounted: %v", mps)
	}
	files, _ := filepath.Glob(filepath.Join(cfg.DataDir, "*"))
	for _, f := range files {
		if out, _ := exec.Command("losetup", "-j", f).Output(); len(bytes.TrimSpace(out)) != 0 {
			t.Errorf("still attached: %s", out)
		}
	}
}

// TestExplicitBlankDevice: a blank disk that is not a hosted file is claimed,
// typed by its measured seek time, remembered, and not detached by Close.
func TestExplicitBlankDevice(t *testing.T) {
	requireKernel(t)
	dev, _ := losetupFile(t, 512<<20)
	cfg := hostedConfig(t)
	cfg.Devices = []string{dev}
	m := startModule(t, cfg)
	pools := m.Pools()
	if len(pools) != 1 || pools[0].Broken != "" {
		t.Fatalf("pools = %+v, want one healthy pool", pools)
	}
	// A loop device seeks like an SSD, usually: about 0.3 ms here, too close
	// to the 0.5 ms line to assert under -race on two cores.
	if pools[0].Type != SSD && pools[0].Type != HDD {
		t.Errorf("type %q, want ssd or hdd", pools[0].Type)
	}
	if mk, err := readMarker(filepath.Join(cfg.Root, pools[0].Name)); err != nil || mk.Type != pools[0].Type {
		t.Errorf("marker = %+v, %v; want type %s remembered", mk, err, pools[0].Type)
	}
	if sig, _ := (blockdev.Blkid{}).Probe(dev); sig.Type != "btrfs" || sig.Label != pools[0].Name {
		t.Errorf("signature %+v, want btrfs labelled %s", sig, pools[0].Name)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Not ours to detach: the test made it.
	if out, _ := exec.Command("losetup", dev).CombinedOutput(); !strings.Contains(string(out), "foreign.img") {
		t.Errorf("device %s detached by Close: %s", dev, out)
	}
}

// A zdb device whose making was cut short (made, not yet given its quota
// and name: a crash) is removed at start, and a device can be allocated.
func TestDeviceCutShort(t *testing.T) {
	requireKernel(t)
	cfg := hostedConfig(t, SSD, HDD)
	m := startModule(t, cfg)
	var hdd string
	for _, p := range m.Pools() {
		if p.Type == HDD {
			hdd = filepath.Join(cfg.Root, p.Name)
		}
	}
	if hdd == "" {
		t.Fatal("no HDD pool")
	}
	tmp := filepath.Join(hdd, zdbTmpName)
	if out, err := exec.Command("btrfs", "subvolume", "create", tmp).CombinedOutput(); err != nil {
		t.Fatalf("btrfs subvolume create: %v: %s", err, out)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m2 := startModule(t, cfg)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the cut-short device is still there: %v", err)
	}
	if devs, _ := m2.Devices(); len(devs) != 0 {
		t.Errorf("devices after start: %+v, want none", devs)
	}
	dev, err := m2.DeviceAllocate(64 << 20)
	if err != nil || dev.Size != 64<<20 {
		t.Fatalf("DeviceAllocate: %+v, %v", dev, err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the temporary name is left after allocating: %v", err)
	}
}
