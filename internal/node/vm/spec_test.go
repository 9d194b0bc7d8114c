package vm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

func goldenManager(t *testing.T) *Manager {
	t.Helper()
	return &Manager{cfg: Config{Root: "/var/vm", Kernel: "/k/vmlinux", Initrd: "/k/vminit.cpio", Accel: qemu.AccelTCG, NetNS: "n-net1"}}
}

// goldenSpecs are one spec per boot mode.
func goldenSpecs() map[string]Spec {
	nics := []qemu.NIC{{ID: "n0", Tap: "t-abc", MAC: "52:54:00:12:34:56"}}
	return map[string]Spec{
		"container": {
			Name: "vm1", CPUs: 1, MemoryMiB: 256, RootDir: "/mnt/root",
			Shares: []Share{{Dir: "/vols/v1", Mountpoint: "/vol"}},
			Disks:  []Disk{{Path: "/disks/data.raw", Mountpoint: "/data"}, {Path: "/disks/raw.raw"}},
			NICs:   nics,
			Guest:  guest.Config{Entrypoint: []string{"/bin/sh", "-c", "echo hi"}},
		},
		"kernel": {
			Name: "vm2", CPUs: 2, MemoryMiB: 512, RootDir: "/mnt/root",
			Boot:  Boot{Mode: BootKernel, Kernel: "/vols/rootfs-vm2/boot/vmlinuz", Initrd: "/vols/rootfs-vm2/boot/initrd.img", Cmdline: "quiet"},
			NICs:  nics,
			Guest: guest.Config{Entrypoint: []string{"/sbin/init", "single"}},
		},
		"disk": {
			Name: "vm3", CPUs: 2, MemoryMiB: 1024, Boot: Boot{Mode: BootDisk},
			Disks: []Disk{{Path: "/disks/os.raw"}, {Path: "/disks/data.raw"}},
			NICs:  nics,
		},
	}
}

// TestSpecArgvGolden: the QEMU argv of each boot mode, from the spec.
func TestSpecArgvGolden(t *testing.T) {
	m := goldenManager(t)
	for name, s := range goldenSpecs() {
		t.Run(name, func(t *testing.T) {
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
			v, err := m.qemuVM(s, "/var/vm/"+s.Name, []string{"btrfs", ""}, DefaultUIDBase)
			if err != nil {
				t.Fatal(err)
			}
			if v.NetNS != "n-net1" {
				t.Errorf("got netns %q, want n-net1", v.NetNS)
			}
			got := strings.Join(qemu.Argv(v), "\n") + "\n"
			testutil.Golden(t, filepath.Join("testdata", "spec-"+name+".argv"), []byte(got))
			if len(shareDirs(s)) != len(v.FS) {
				t.Errorf("got %d share dirs for %d virtiofs devices", len(shareDirs(s)), len(v.FS))
			}
		})
	}
}

// specCase changes a golden spec and names the error Validate must give
// ("" for none).
type specCase struct {
	name string
	mod  func(s *Spec)
	want string
}

func TestSpecValidate(t *testing.T) {
	tests := []specCase{
		{"ok", func(s *Spec) {}, ""},
		{"bad name", func(s *Spec) { s.Name = "a/b" }, "name"},
		{"relative root", func(s *Spec) { s.RootDir = "root" }, "root dir"},
		{"bad mode", func(s *Spec) { s.Boot.Mode = "pxe" }, "boot mode"},
		{"kernel without kernel", func(s *Spec) { s.Boot.Mode = BootKernel }, "boot kernel"},
		{"kernel field in container mode", func(s *Spec) { s.Boot.Kernel = "/k" }, "boot mode kernel only"},
		{"disk mode without disk", func(s *Spec) { s.Boot.Mode, s.Disks = BootDisk, nil }, "no disk"},
		{"disk mode without root", func(s *Spec) { s.Boot.Mode, s.RootDir = BootDisk, "" }, ""},
		{"relative disk", func(s *Spec) { s.Disks = []Disk{{Path: "d.raw"}} }, "disk"},
	}
	// Kernel mode: QEMU must never read a boot file the guest can write
	// (its root or a share): the guest would swap it for a link to a
	// host file before a restart.
	kernelTests := []specCase{
		{"kernel ok", func(s *Spec) {}, ""},
		{"kernel in the root", func(s *Spec) { s.Boot.Kernel = "/mnt/root/boot/vmlinuz" }, "inside /mnt/root"},
		{"initrd in the root", func(s *Spec) { s.Boot.Initrd = "/mnt/root/boot/initrd.img" }, "inside /mnt/root"},
		{"initrd in the root, unclean", func(s *Spec) { s.Boot.Initrd = "/mnt/x/../root//boot/initrd.img" }, "inside /mnt/root"},
		{"kernel is the root", func(s *Spec) { s.Boot.Kernel = "/mnt/root" }, "inside /mnt/root"},
		{"kernel in a share", func(s *Spec) {
			s.Shares = []Share{{Dir: "/vols/v1", Mountpoint: "/v"}}
			s.Boot.Kernel = "/vols/v1/vmlinuz"
		}, "inside /vols/v1"},
		{"next to the root", func(s *Spec) { s.Boot.Kernel = "/mnt/rootfs/vmlinuz" }, ""},
	}
	for _, set := range []struct {
		base  string // the golden spec the cases change
		cases []specCase
	}{{"container", tests}, {"kernel", kernelTests}} {
		for _, tt := range set.cases {
			t.Run(tt.name, func(t *testing.T) {
				s := goldenSpecs()[set.base]
				tt.mod(&s)
				err := s.Validate()
				testutil.WantError(t, err, tt.want)
			})
		}
	}
	// Kernel mode: entrypoint arguments must survive the command line.
	s := goldenSpecs()["kernel"]
	s.Guest.Entrypoint = []string{"/sbin/init", "two words"}
	if _, err := goldenManager(t).qemuVM(s, "/var/vm/vm2", nil, DefaultUIDBase); err == nil || !strings.Contains(err.Error(), "two words") {
		t.Fatalf("got %v, want an error about the argument with a space", err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Root: "/r", Kernel: "/k", Initrd: "/i", Accel: qemu.AccelTCG}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.LogMax != 8<<20 || c.LogKeep != 4<<20 || c.LogCheck.Seconds() != 10 {
		t.Fatalf("got defaults max %d keep %d check %s", c.LogMax, c.LogKeep, c.LogCheck)
	}
	c.LogKeep = c.LogMax
	if err := c.Validate(); err == nil {
		t.Fatal("keep >= max accepted")
	}
}

func TestTrimLog(t *testing.T) {
	p := filepath.Join(t.TempDir(), "console.log")
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if cut, err := trimLog(p, 1000, 300); err != nil || cut {
		t.Fatalf("at the bound: got %v, %v; want untouched", cut, err)
	}
	if cut, err := trimLog(p, 999, 300); err != nil || !cut {
		t.Fatalf("over the bound: got %v, %v; want cut", cut, err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, data[700:]) {
		t.Fatalf("got %d bytes %q..., want the last 300", len(got), got[:min(20, len(got))])
	}
	// A writer in append mode continues at the new end.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("NEXT")
	f.Close()
	got, _ = os.ReadFile(p)
	if len(got) != 304 || !strings.HasSuffix(string(got), "NEXT") {
		t.Fatalf("after append: got %d bytes ending %q", len(got), got[len(got)-4:])
	}
	if _, err := trimLog(filepath.Join(t.TempDir(), "none"), 1, 0); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v", err)
	}
}

func TestWriteImage(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.raw")
	if err := os.WriteFile(disk, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	img := bytes.Repeat([]byte{0xAB}, 1024)
	tests := []struct {
		name string
		src  io.Reader
		size int64
		want string
	}{
		{"too large", bytes.NewReader(make([]byte, 5000)), 5000, "larger than the disk"},
		{"short source", bytes.NewReader(img[:10]), 1024, "ended after 10"},
		{"long source", bytes.NewReader(append(img, 1)), 1024, "longer than its size"},
		{"missing disk", bytes.NewReader(img), 1024, "no such file"},
		{"ok", bytes.NewReader(img), 1024, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := disk
			if tt.name == "missing disk" {
				d = filepath.Join(dir, "none.raw")
			}
			err := WriteImage(tt.src, tt.size, d)
			testutil.WantError(t, err, tt.want)
			if tt.name == "too large" && !errors.Is(err, ErrImageTooLarge) {
				t.Fatalf("got %v, want ErrImageTooLarge", err)
			}
		})
	}
	got, _ := os.ReadFile(disk)
	if len(got) != 4096 || !bytes.Equal(got[:1024], img) || got[1024] != 0 {
		t.Fatalf("disk after writing: %d bytes, image at the start %v", len(got), bytes.Equal(got[:1024], img))
	}
}

// TestFormatBlank: a blank disk is formatted btrfs once; a disk with data
// (a btrfs written to, or another file system) is never reformatted.
func TestFormatBlank(t *testing.T) {
	testutil.RequireBinary(t, "mkfs.btrfs")
	testutil.RequireBinary(t, "blkid")
	mkfsExt4 := testutil.RequireBinary(t, "mkfs.ext4")
	dir := t.TempDir()
	blank := filepath.Join(dir, "blank.raw")
	ext4 := filepath.Join(dir, "ext4.raw")
	for _, p := range []string{blank, ext4} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 256<<20); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command(mkfsExt4, "-q", "-F", ext4).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if f, err := FormatBlank(blank); err != nil || !f {
		t.Fatalf("blank disk: got %v, %v; want formatted", f, err)
	}
	sum := func(p string) []byte {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := make([]byte, 1<<20)
		if _, err := io.ReadFull(f, b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	before := sum(blank)
	if f, err := FormatBlank(blank); err != nil || f {
		t.Fatalf("formatted disk: got %v, %v; want left alone", f, err)
	}
	if !bytes.Equal(before, sum(blank)) {
		t.Fatal("formatted disk changed on the second call")
	}
	before = sum(ext4)
	if f, err := FormatBlank(ext4); err != nil || f {
		t.Fatalf("ext4 disk: got %v, %v; want left alone", f, err)
	}
	if !bytes.Equal(before, sum(ext4)) {
		t.Fatal("ext4 disk changed")
	}
}

// TestFreeUID: every VM gets a user of its own: the lowest of UIDBase +
// i that no running, adopted or starting VM has.
func TestFreeUID(t *testing.T) {
	const base = DefaultUIDBase
	m := &Manager{cfg: Config{UIDBase: base}, vms: map[string]*machine{
		"a":   {state: state{UID: base}},
		"b":   {state: state{UID: base + 2}},
		"old": {state: state{}}, // adopted from a run before users
	}, starting: map[string]uint32{"c": base + 1}}
	if got, err := m.freeUID(); err != nil || got != base+3 {
		t.Fatalf("got %d, %v; want %d", got, err, base+3)
	}
	delete(m.starting, "c")
	if got, err := m.freeUID(); err != nil || got != base+1 {
		t.Fatalf("after c's start ended: got %d, %v; want %d", got, err, base+1)
	}
}
