package btrfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// TestOnLoop drives the real binaries on a loop device the test makes.
func TestOnLoop(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "mkfs.btrfs")
	testutil.RequireBinary(t, "losetup")
	dir := t.TempDir()
	file := filepath.Join(dir, "disk.img")
	os.WriteFile(file, nil, 0o600)
	os.Truncate(file, 512<<20)
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	var b Btrfs
	if err := b.Mkfs(dev, "zos-test"); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkfs(dev, "zos-again"); err == nil || !strings.Contains(err.Error(), "mkfs.btrfs -q -L zos-again") {
		t.Errorf("mkfs over an existing file system: got %v, want a refusal with the argv", err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	if out, err := exec.Command("mount", dev, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	if err := b.QuotaEnable(mnt); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(mnt, "rootfs:1-2-vm")
	if err := b.SubvolumeCreate(vol); err != nil {
		t.Fatal(err)
	}
	if err := b.Limit(vol, 8<<20); err != nil {
		t.Fatal(err)
	}
	q, err := b.Qgroup(vol)
	if err != nil || q.Limit != 8<<20 {
		t.Errorf("Qgroup = %+v, %v; want limit 8 MiB", q, err)
	}
	all, err := b.Qgroups(mnt)
	if err != nil || all["rootfs:1-2-vm"].Limit != 8<<20 {
		t.Errorf("Qgroups = %+v, %v", all, err)
	}
	if err := b.SubvolumeDelete(vol); err != nil {
		t.Fatal(err)
	}
	if err := b.SubvolumeDelete(vol); err == nil {
		t.Error("deleting twice: want an error")
	}
	if err := b.Limit(filepath.Join(mnt, "missing"), 1); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("limit on a missing path: got %v, want an error naming it", err)
	}
	if _, err := b.Qgroup(filepath.Join(mnt, "missing")); err == nil || !strings.Contains(err.Error(), "btrfs qgroup show") {
		t.Errorf("qgroup of a missing path: got %v, want the argv in the error", err)
	}
	// Limits through the ioctl are enforced and can be lifted.
	lim := filepath.Join(mnt, "lim")
	if err := b.SubvolumeCreate(lim); err != nil {
		t.Fatal(err)
	}
	b.Limit(lim, 4<<20)
	if err := os.WriteFile(filepath.Join(lim, "f"), make([]byte, 8<<20), 0o644); err == nil || !strings.Contains(err.Error(), "disk quota exceeded") {
		t.Errorf("write past the limit: got %v, want disk quota exceeded", err)
	}
	if err := b.Limit(lim, 0); err != nil {
		t.Fatal(err)
	}
	if q, _ := b.Qgroup(lim); q.Limit != 0 {
		t.Errorf("limit after removing: %d", q.Limit)
	}
}
