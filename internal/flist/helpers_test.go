package flist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	sysfuse "github.com/zos-go/zos/internal/sys/fuse"
	"github.com/zos-go/zos/internal/testutil"
)

// busyboxTree makes a small root file system around the static busybox:
// every entry type, odd modes and owners, a multi-block file and a hard
// link. Device nodes need root.
func busyboxTree(t testing.TB) string {
	t.Helper()
	bb := testutil.RequireBinary(t, "busybox")
	root := filepath.Join(t.TempDir(), "rootfs")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc", "dev", "tmp", "home/user", "var/empty", "usr/share/data"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	data, err := os.ReadFile(bb)
	must(err)
	must(os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755))
	for _, l := range []string{"sh", "ls", "cat", "echo", "sha256sum"} {
		must(os.Symlink("busybox", filepath.Join(root, "bin", l)))
	}
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"), 0o644))
	must(os.WriteFile(filepath.Join(root, "etc/shadow"), []byte("root:*:1::::::\n"), 0o600))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "etc/passwd.link")))
	must(os.WriteFile(filepath.Join(root, "home/user/.profile"), []byte("export PS1='$ '\n"), 0o640))
	must(os.Lchown(filepath.Join(root, "home/user"), 1000, 1000))
	must(os.Lchown(filepath.Join(root, "home/user/.profile"), 1000, 1000))
	must(os.WriteFile(filepath.Join(root, "usr/share/data/empty"), nil, 0o644))
	big := make([]byte, 3*DefaultBlockSize+12345)
	rand.New(rand.NewSource(1)).Read(big)
	must(os.WriteFile(filepath.Join(root, "usr/share/data/random.bin"), big, 0o644))
	must(os.WriteFile(filepath.Join(root, "usr/share/data/zeros.bin"), make([]byte, 2*DefaultBlockSize), 0o644))
	must(os.Link(filepath.Join(root, "etc/passwd"), filepath.Join(root, "etc/passwd.hard")))
	must(os.WriteFile(filepath.Join(root, "bin/suid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(root, "bin/suid"), 0o4755))
	must(os.Chmod(filepath.Join(root, "var/empty"), 0o1777))
	must(syscall.Mkfifo(filepath.Join(root, "tmp/fifo"), 0o600))
	if os.Geteuid() == 0 {
		must(syscall.Mknod(filepath.Join(root, "dev/null"), syscall.S_IFCHR|0o666, 1<<8|3))
		must(syscall.Mknod(filepath.Join(root, "dev/loop7"), syscall.S_IFBLK|0o660, 7<<8|7))
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(os.Chtimes(filepath.Join(root, "etc/passwd"), old, old))
	return root
}

// buildSource builds src (a directory, an OCI layout or an image archive)
// with the store and returns the finished flist.
func buildSource(t testing.TB, store Store, src string) *Meta {
	t.Helper()
	b := NewBuilder(BuildConfig{}, store, testutil.Logger(t))
	if err := AddSource(context.Background(), b, src); err != nil {
		t.Fatalf("building: %v", err)
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatalf("finishing: %v", err)
	}
	return m
}

// buildDir builds src into an flist file with the store.
func buildDir(t testing.TB, src string, store Store) (string, *Meta) {
	t.Helper()
	ctx := context.Background()
	m := buildSource(t, store, src)
	out := filepath.Join(t.TempDir(), "out.fl")
	if err := Write(ctx, out, m); err != nil {
		t.Fatalf("writing: %v", err)
	}
	m2, err := Open(ctx, out)
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	return out, m2
}

// mountMeta mounts m read-only; the test's cleanup unmounts even when it
// fails.
func mountMeta(t testing.TB, m *Meta, cfg MountConfig) *Mount {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Skip(t, "no /dev/fuse")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt, err := MountFS(dir, m, cfg, testutil.Logger(t))
	if err != nil {
		t.Fatalf("mounting: %v", err)
	}
	t.Cleanup(func() {
		if err := mnt.Close(); err != nil {
			t.Errorf("unmounting: %v", err)
		}
		_ = sysfuse.LazyUnmount(dir)
	})
	return mnt
}

// compareTrees checks that every entry of want is in got with the same
// type, permissions, owner, size, content, link target and device, and
// that got has nothing more.
func compareTrees(t testing.TB, want, got string) {
	t.Helper()
	seen := 0
	err := filepath.Walk(want, func(p string, wi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen++
		gp := filepath.Join(got, rel)
		gi, err := os.Lstat(gp)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		ws, gs := wi.Sys().(*syscall.Stat_t), gi.Sys().(*syscall.Stat_t)
		if ws.Mode != gs.Mode {
			t.Errorf("%s: mode got %o, want %o", rel, gs.Mode, ws.Mode)
		}
		if ws.Uid != gs.Uid || ws.Gid != gs.Gid {
			t.Errorf("%s: owner got %d:%d, want %d:%d", rel, gs.Uid, gs.Gid, ws.Uid, ws.Gid)
		}
		if wi.Mode().IsRegular() {
			if ws.Mtim.Sec != gs.Mtim.Sec {
				t.Errorf("%s: mtime got %d, want %d", rel, gs.Mtim.Sec, ws.Mtim.Sec)
			}
			if wi.Size() != gi.Size() {
				t.Errorf("%s: size got %d, want %d", rel, gi.Size(), wi.Size())
			}
			if hashFile(t, p) != hashFile(t, gp) {
				t.Errorf("%s: content differs", rel)
			}
		}
		if wi.Mode()&os.ModeSymlink != 0 {
			wt, _ := os.Readlink(p)
			gt, err := os.Readlink(gp)
			if err != nil || wt != gt {
				t.Errorf("%s: link got %q (%v), want %q", rel, gt, err, wt)
			}
		}
		if wi.Mode()&os.ModeDevice != 0 && ws.Rdev != gs.Rdev {
			t.Errorf("%s: rdev got %x, want %x", rel, gs.Rdev, ws.Rdev)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	_ = filepath.Walk(got, func(string, os.FileInfo, error) error { n++; return nil })
	if n != seen {
		t.Errorf("entries got %d, want %d", n, seen)
	}
}

func hashFile(t testing.TB, p string) [32]byte {
	f, err := os.Open(p)
	if err != nil {
		t.Errorf("%v", err)
		return [32]byte{}
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Errorf("reading %s: %v", p, err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

var _ = bytes.Equal
