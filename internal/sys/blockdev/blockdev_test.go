package blockdev

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, v := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSysfsList(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"block/sda/size":                 "2097152\n",
		"block/sda/queue/rotational":     "1\n",
		"block/sda/removable":            "0\n",
		"block/sda/ro":                   "0\n",
		"block/sda/sda1/partition":       "1\n",
		"block/sda/sda1/size":            "2048\n",
		"block/nvme0n1/size":             "4194304\n",
		"block/nvme0n1/queue/rotational": "0\n",
		"block/nvme0n1/removable":        "0\n",
		"block/sdb/size":                 "1024\n",
		"block/sdb/removable":            "1\n",
		"block/sdb/ro":                   "1\n",
	})
	disks, err := Sysfs{Root: root}.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Disk{
		{Name: "nvme0n1", Path: "/dev/nvme0n1", Size: 4194304 * 512},
		{Name: "sda", Path: "/dev/sda", Size: 1 << 30, Rotational: true, Partitions: []string{"sda1"}},
		{Name: "sdb", Path: "/dev/sdb", Size: 1024 * 512, Removable: true, ReadOnly: true},
	}
	if !reflect.DeepEqual(disks, want) {
		t.Errorf("got %+v\nwant %+v", disks, want)
	}
	d, err := Sysfs{Root: root}.Stat("/dev/sda")
	if err != nil || d.Name != "sda" {
		t.Errorf("Stat = %+v, %v", d, err)
	}
	if _, err := (Sysfs{Root: root}).Stat("/dev/sdz"); err == nil {
		t.Error("Stat of an unknown disk: want an error")
	}
}

func TestPhysical(t *testing.T) {
	for name, want := range map[string]bool{"sda": true, "nvme0n1": true, "vda": true, "loop0": false, "zram0": false, "dm-1": false, "sr0": false} {
		if got := Physical(name); got != want {
			t.Errorf("Physical(%s) = %v, want %v", name, got, want)
		}
	}
}

func TestParseExport(t *testing.T) {
	in := "DEVNAME=/dev/loop0\nLABEL=zos-1\nUUID=d4d5\nTYPE=btrfs\nUSAGE=filesystem\n"
	if got, want := ParseExport([]byte(in)), (Signature{Type: "btrfs", Label: "zos-1", UUID: "d4d5"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := ParseExport([]byte("DEVNAME=/dev/sda\nPTUUID=x\nPTTYPE=gpt\n")); got.PartTable != "gpt" || got.Empty() {
		t.Errorf("partition table: got %+v", got)
	}
	if !ParseExport(nil).Empty() {
		t.Error("empty output: want empty signature")
	}
}

func FuzzParseExport(f *testing.F) {
	f.Add([]byte("TYPE=btrfs\nLABEL=x\n"))
	f.Add([]byte("=\n==\nPTTYPE"))
	f.Fuzz(func(t *testing.T, b []byte) { _ = ParseExport(b) })
}

func TestSeekTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := SeekTime(path, 8)
	if err != nil {
		testutil.Skip(t, "O_DIRECT not supported here: "+err.Error())
	}
	if d <= 0 || d > time.Second {
		t.Errorf("seek time %v", d)
	}
	small := filepath.Join(t.TempDir(), "small")
	os.WriteFile(small, make([]byte, 100), 0o600)
	if _, err := SeekTime(small, 8); err == nil {
		t.Error("a 100-byte device: want an error")
	}
}
