package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/btrfs"
	"github.com/zos-go/zos/internal/sys/mount"
)

// fakeSys records what the module asks of the kernel as readable lines and
// keeps subvolumes as plain directories.
type fakeSys struct {
	root string // paths in lines are relative to it

	mu     sync.Mutex
	lines  []string
	disks  map[string]blockdev.Disk
	sigs   map[string]blockdev.Signature
	limits map[string]uint64 // subvolume path -> limit
	excl   map[string]uint64 // subvolume path -> exclusive bytes
	seek   map[string]time.Duration
	stats  map[string]btrfs.DeviceStats // mount point -> error counters
	ro     map[string]bool              // mount point -> read-only
	loops  map[string]string            // attached file -> device
}

func newFakeSys(root string) *fakeSys {
	return &fakeSys{root: root, disks: map[string]blockdev.Disk{}, sigs: map[string]blockdev.Signature{},
		limits: map[string]uint64{}, excl: map[string]uint64{}, seek: map[string]time.Duration{},
		stats: map[string]btrfs.DeviceStats{}, ro: map[string]bool{}}
}

func (f *fakeSys) system() System {
	return System{Disks: f, Loops: f, Mounts: f, FS: f, Quotas: f, Files: f, Stats: f}
}

func (f *fakeSys) logf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := fmt.Sprintf(format, args...)
	f.lines = append(f.lines, strings.ReplaceAll(s, f.root, "ROOT"))
}

func (f *fakeSys) addDisk(name string, size uint64, rot bool, sig blockdev.Signature, parts ...string) {
	dev := "/dev/" + name
	f.disks[dev] = blockdev.Disk{Name: name, Path: dev, Size: size, Rotational: rot, Partitions: parts}
	f.sigs[dev] = sig
}

func (f *fakeSys) List() ([]blockdev.Disk, error) {
	var out []blockdev.Disk
	for _, d := range f.disks {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeSys) Stat(dev string) (blockdev.Disk, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.disks[dev]
	if !ok {
		return blockdev.Disk{}, fmt.Errorf("no disk %s", dev)
	}
	return d, nil
}

func (f *fakeSys) Probe(path string) (blockdev.Signature, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sigs[path], nil
}

func (f *fakeSys) SeekTime(dev string) (time.Duration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.seek[dev]
	if !ok {
		return 0, fmt.Errorf("no seek time for %s", dev)
	}
	return d, nil
}

func (f *fakeSys) Attach(file string) (string, error) {
	f.mu.Lock()
	if f.loops == nil {
		f.loops = map[string]string{}
	}
	// A file attached again is the same disk, with what was made on it.
	dev, again := f.loops[file]
	if !again {
		dev = fmt.Sprintf("/dev/loop%d", 10+len(f.disks))
		f.loops[file] = dev
		f.addDisk(filepath.Base(dev), 1<<30, false, blockdev.Signature{})
	}
	f.mu.Unlock()
	f.logf("attach %s", file)
	return dev, nil
}

func (f *fakeSys) Detach(dev string) error { f.logf("detach %s", dev); return nil }

func (f *fakeSys) Mount(source, target, fstype, data string) error {
	f.logf("mount %s %s %s %s", source, target, fstype, data)
	return os.MkdirAll(target, 0o755)
}

func (f *fakeSys) Unmount(target string) error { f.logf("unmount %s", target); return nil }

func (f *fakeSys) Mounted(string) (bool, error) { return false, nil }

func (f *fakeSys) Statfs(path string) (mount.Stat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return mount.Stat{ReadOnly: f.ro[path]}, nil
}

func (f *fakeSys) DeviceStats(mnt string) (btrfs.DeviceStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats[mnt], nil
}

func (f *fakeSys) Mkfs(dev, label string) error {
	f.logf("mkfs %s", dev)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sigs[dev] = blockdev.Signature{Type: "btrfs", Label: label}
	return nil
}

func (f *fakeSys) QuotaEnable(mnt string) error { f.logf("quota enable %s", mnt); return nil }

func (f *fakeSys) SubvolumeCreate(path string) error {
	f.logf("subvolume create %s", path)
	f.mu.Lock()
	f.limits[path] = 0
	f.mu.Unlock()
	return os.Mkdir(path, 0o755)
}

func (f *fakeSys) SubvolumeDelete(path string) error {
	f.logf("subvolume delete %s", path)
	f.mu.Lock()
	delete(f.limits, path)
	f.mu.Unlock()
	return os.RemoveAll(path)
}

func (f *fakeSys) Limit(path string, size uint64) error {
	f.logf("limit %s %d", path, size)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.limits[path] = size
	return nil
}

func (f *fakeSys) Qgroup(path string) (btrfs.Qgroup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return btrfs.Qgroup{Limit: f.limits[path], Exclusive: f.excl[path], Referenced: f.excl[path]}, nil
}

func (f *fakeSys) Qgroups(mnt string) (map[string]btrfs.Qgroup, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]btrfs.Qgroup{}
	for p, l := range f.limits {
		if filepath.Dir(p) == mnt {
			out[filepath.Base(p)] = btrfs.Qgroup{Limit: l, Exclusive: f.excl[p]}
		}
	}
	return out, nil
}

func (f *fakeSys) Allocate(path string, size uint64) error {
	f.logf("allocate %s %d", path, size)
	return os.WriteFile(path, make([]byte, 0), 0o600)
}

func (f *fakeSys) setExcl(path string, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.excl[path] = n
}

// take returns the recorded lines, sorted: disks are set up in parallel.
func (f *fakeSys) take() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	sort.Strings(f.lines)
	s := strings.Join(f.lines, "\n")
	f.lines = nil
	return s
}

func TestDiscoveryDecisions(t *testing.T) {
	root := t.TempDir()
	fs := newFakeSys(root)
	ours := "zos-0123456789ab"
	fs.addDisk("sda", 10*gib, true, blockdev.Signature{})                                     // blank HDD: formatted
	fs.addDisk("sdb", 10*gib, false, blockdev.Signature{Type: "ext4", Label: "farmer"})       // foreign fs
	fs.addDisk("sdc", 10*gib, false, blockdev.Signature{}, "sdc1")                            // partitions
	fs.addDisk("sdd", 20*gib, true, blockdev.Signature{Type: "btrfs", Label: ours})           // ours, typed ssd before
	fs.addDisk("sde", 10*gib, false, blockdev.Signature{Type: "btrfs", Label: "n2-zos-0123"}) // another node's
	fs.addDisk("sdf", 10*gib, false, blockdev.Signature{PartTable: "gpt"})                    // partition table
	fs.addDisk("loop0", 10*gib, false, blockdev.Signature{})                                  // not physical
	fs.addDisk("sdg", 10*gib, true, blockdev.Signature{})                                     // blank, fast despite the flag: ssd
	fs.seek["/dev/sdg"] = 100 * time.Microsecond
	fs.addDisk("sdh", 10*gib, false, blockdev.Signature{}) // blank, slow despite the flag: hdd
	fs.seek["/dev/sdh"] = 8 * time.Millisecond
	// The existing pool remembers it was typed SSD (despite rotational=1)
	// and holds a volume and the cache.
	existing := filepath.Join(root, "mnt", ours)
	os.MkdirAll(filepath.Join(existing, "vol1"), 0o755)
	os.MkdirAll(filepath.Join(existing, cacheName), 0o755)
	os.WriteFile(filepath.Join(existing, markerName), []byte(`{"type":"ssd"}`), 0o644)
	fs.limits[filepath.Join(existing, "vol1")] = gib
	fs.limits[filepath.Join(existing, cacheName)] = 5 * gib

	// sda also named explicitly: claimed once.
	m, err := New(Config{Root: filepath.Join(root, "mnt"), ScanHost: true, Devices: []string{"/dev/sda"},
		CacheCheckInterval: time.Millisecond}, fs.system(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := fs.take()
	want := strings.Join([]string{
		"mkfs /dev/sda",
		"mkfs /dev/sdg",
		"mkfs /dev/sdh",
		"mount /dev/sda ROOT/mnt/zos-LABEL btrfs ",
		"mount /dev/sdd ROOT/mnt/zos-0123456789ab btrfs ",
		"mount /dev/sdg ROOT/mnt/zos-LABEL btrfs ",
		"mount /dev/sdh ROOT/mnt/zos-LABEL btrfs ",
		"quota enable ROOT/mnt/zos-LABEL",
		"quota enable ROOT/mnt/zos-LABEL",
		"quota enable ROOT/mnt/zos-LABEL",
	}, "\n")
	if normalise(got) != want {
		t.Errorf("kernel calls:\n%s\nwant:\n%s", normalise(got), want)
	}
	var ignored []string
	for _, d := range m.Ignored() {
		ignored = append(ignored, d.Path)
	}
	if strings.Join(ignored, " ") != "/dev/sdb /dev/sdc /dev/sde /dev/sdf" {
		t.Errorf("ignored %v, want sdb sdc sde sdf", ignored)
	}
	pools := m.Pools()
	if len(pools) != 4 {
		t.Fatalf("pools %+v", pools)
	}
	for _, p := range pools {
		var want DeviceType
		switch m.poolDev(p.Name) {
		case "/dev/sda": // rotational, no seek time: the flag decides
			want = HDD
		case "/dev/sdd": // the marker decides
			want = SSD
		case "/dev/sdg":
			want = SSD
		case "/dev/sdh":
			want = HDD
		}
		if p.Type != want {
			t.Errorf("pool on %s type %s, want %s", m.poolDev(p.Name), p.Type, want)
		}
	}
	if c, limited := m.Cache(); c != filepath.Join(existing, cacheName) || limited {
		t.Errorf("Cache() = %s, %v; want the existing one", c, limited)
	}
	if v, err := m.VolumeLookup("vol1"); err != nil || v.Size != gib {
		t.Errorf("existing volume = %+v, %v", v, err)
	}
	if got := m.Total(SSD); got != 30*gib {
		t.Errorf("Total(ssd) = %d", got)
	}

	// The cache quota loop step.
	fs.setExcl(filepath.Join(existing, cacheName), 4*gib)
	if err := m.AdjustCache(); err != nil {
		t.Fatal(err)
	}
	if got := m.CacheReserved(); got != 10*gib {
		t.Errorf("cache after 80%% use = %d, want 10 GiB", got)
	}
	fs.setExcl(filepath.Join(existing, cacheName), 1*gib)
	if err := m.AdjustCache(); err != nil {
		t.Fatal(err)
	}
	if got := m.CacheReserved(); got != 5*gib {
		t.Errorf("cache after 10%% use = %d, want 5 GiB", got)
	}
	fs.take()
	done := m.done
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	default:
		t.Error("cache loop still running after Close")
	}
	if got := normalise(fs.take()); !strings.Contains(got, "unmount ROOT/mnt/zos-0123456789ab") || !strings.Contains(got, "unmount ROOT/mnt/zos-LABEL") {
		t.Errorf("Close calls:\n%s", got)
	}
}

// normalise replaces random pool labels.
func normalise(s string) string {
	var out []string
	for _, w := range strings.Split(s, " ") {
		if i := strings.Index(w, "zos-"); i >= 0 && !strings.Contains(w, "0123456789ab") && !strings.Contains(w, "cache") {
			w = w[:i] + "zos-LABEL" + w[i+len("zos-")+12:]
		}
		out = append(out, w)
	}
	return strings.Join(out, " ")
}

func TestTmpfsFallback(t *testing.T) {
	root := t.TempDir()
	fs := newFakeSys(root)
	m, err := New(Config{Root: filepath.Join(root, "mnt"), CacheTmpfsSize: 1 << 20}, fs.system(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, want := fs.take(), "mount tmpfs ROOT/mnt/zos-cache tmpfs size=1048576,mode=0700"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if c, limited := m.Cache(); !limited || c != filepath.Join(root, "mnt", cacheName) {
		t.Errorf("Cache() = %s, %v", c, limited)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := fs.take(), "unmount ROOT/mnt/zos-cache"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHostedDisksFake(t *testing.T) {
	root := t.TempDir()
	fs := newFakeSys(root)
	cfg := Config{Root: filepath.Join(root, "mnt"), DataDir: filepath.Join(root, "data"), Prefix: "n1-",
		Disks: []HostedDisk{{SSD, gib}, {HDD, 2 * gib}}, CacheStep: 64 << 20}
	m, err := New(cfg, fs.system(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{1 << 30, 2 << 30} {
		st, err := os.Stat(filepath.Join(cfg.DataDir, fmt.Sprintf("n1-disk%d.img", i)))
		if err != nil || st.Size() != want {
			t.Errorf("disk file %d: %v, %v; want %d bytes", i, st, err, want)
		}
	}
	for _, p := range m.Pools() {
		if !strings.HasPrefix(p.Name, "n1-zos-") {
			t.Errorf("pool %s lacks the node prefix", p.Name)
		}
	}
	if _, err := m.VolumeCreate("v", 10<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DiskCreate("d", 10<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := m.DeviceAllocate(gib); err != nil {
		t.Fatal(err)
	}
	fs.take()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got := fs.take()
	if strings.Count(got, "detach /dev/loop") != 2 || strings.Count(got, "unmount") != 2 {
		t.Errorf("Close calls:\n%s\nwant two unmounts and two detaches", got)
	}
}
