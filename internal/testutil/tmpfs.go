package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of the given size ("16m") on a new temporary
// directory and returns it; it is unmounted in t.Cleanup, even when the
// test fails (lazily if something still holds it open). It skips (or fails
// in strict mode) without root or mount.
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	RequireRoot(t)
	mount := RequireBinary(t, "mount")
	umount := RequireBinary(t, "umount")
	dir := t.TempDir() // removed after the unmount below (cleanups run last first)
	if out, err := exec.Command(mount, "-t", "tmpfs", "-o", "size="+size, "zos-test", dir).CombinedOutput(); err != nil {
		Skip(t, fmt.Sprintf("cannot mount tmpfs: %v %s", err, out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command(umount, dir).CombinedOutput(); err != nil {
			t.Logf("umount %s: %v %s (unmounting lazily)", dir, err, out)
			_ = exec.Command(umount, "-l", dir).Run()
		}
	})
	return dir
}

// FillFS writes the file dir/filler until only leave bytes remain
// available on dir's file system, or, with leave 0, until it is full (the
// write fails with ENOSPC). It returns the filler's path; removing it
// frees the space again.
func FillFS(t testing.TB, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for written := int64(0); leave == 0 || written < free-leave; {
		n := int64(len(buf))
		if leave != 0 {
			n = min(n, free-leave-written)
		}
		w, err := f.Write(buf[:n])
		written += int64(w)
		if leave == 0 && errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	return path
}
