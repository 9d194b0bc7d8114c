package flistd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/daemon"
	"github.com/zos-go/zos/internal/sys/mount"
	"github.com/zos-go/zos/internal/testutil"
)

var rootfs = tree{
	"bin/sh":         "#!/bin/true\n",
	"etc/hostname":   "flist\n",
	"etc/os-release": "ID=test\n",
	"var/lib/":       "",
}

// daemonsOf returns the live flist daemons of root's mounts.
func daemonsOf(t testing.TB, root string) []int {
	t.Helper()
	pids, _ := filepath.Glob(filepath.Join(root, dirRun, "*.pid"))
	var out []int
	for _, p := range pids {
		hash := strings.TrimSuffix(filepath.Base(p), ".pid")
		if pid := readPidFile(p); daemon.Alive(pid, marks(filepath.Join(root, dirMounts, hash))...) {
			out = append(out, pid)
		}
	}
	return out
}

func TestMountROShared(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	root := newRoot(t)
	h := newHub(t)
	url := h.build(t, "app.fl", rootfs)
	m := newModule(t, root, Config{Binary: zosBinary(t)})

	// Concurrent callers share one daemon.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = m.MountRO(ctx, url)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	dir1, hash1, err := m.MountRO(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	// The same content under another URL is the same mount.
	dir2, hash2, err := m.MountRO(ctx, h.put(t, "copy.fl", h.file("app.fl")))
	if err != nil {
		t.Fatal(err)
	}
	if dir1 != dir2 || hash1 != hash2 {
		t.Errorf("two mounts of one flist: %s (%s) and %s (%s)", dir1, hash1, dir2, hash2)
	}
	if got := h.count("app.fl"); got > 4 {
		t.Errorf("hub hit %d times, want at most one per concurrent first caller", got)
	}
	hits := h.count("app.fl")
	if _, _, err := m.MountRO(ctx, url); err != nil {
		t.Fatal(err)
	}
	if got := h.count("app.fl"); got != hits {
		t.Errorf("after another MountRO of the URL, hub hit %d times, want %d", got, hits)
	}
	if got := daemonsOf(t, root); len(got) != 1 {
		t.Errorf("daemons = %v, want one", got)
	}
	if got := mustRead(t, filepath.Join(dir1, "etc/hostname")); got != "flist\n" {
		t.Errorf("etc/hostname = %q", got)
	}
	if err := os.WriteFile(filepath.Join(dir1, "etc/new"), []byte("x"), 0o644); err == nil {
		t.Error("writing into the read-only mount succeeded")
	}
	if n := len(mountsUnder(t, root)); n != 1 {
		t.Errorf("%d mounts under the root, want 1", n)
	}
}

func TestOverlay(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	root := newRoot(t)
	fl := buildFlist(t, rootfs)
	m := newModule(t, root, Config{Binary: zosBinary(t)})
	base := filepath.Dir(root)
	rw, target := filepath.Join(base, "vol"), filepath.Join(base, "vm/root")

	if err := m.MountOverlay(ctx, fl, rw, target); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "etc/hostname"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "var/lib/data"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(target, "etc/hostname")); got != "changed\n" {
		t.Errorf("overlay etc/hostname = %q, want changed", got)
	}
	if got := mustRead(t, filepath.Join(rw, "upper/etc/hostname")); got != "changed\n" {
		t.Errorf("upper etc/hostname = %q, want changed", got)
	}
	if got := mustRead(t, filepath.Join(rw, "upper/var/lib/data")); got != "new\n" {
		t.Errorf("upper var/lib/data = %q", got)
	}
	ro, _, err := m.MountRO(ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(ro, "etc/hostname")); got != "flist\n" {
		t.Errorf("lower etc/hostname = %q, want unchanged", got)
	}
	if _, err := os.Stat(filepath.Join(ro, "var/lib/data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lower var/lib/data: %v, want absent", err)
	}

	// Again on the same target: kept (the upper write stays visible).
	if err := m.MountOverlay(ctx, fl, rw, target); err != nil {
		t.Fatal(err)
	}
	if n := len(mountsUnder(t, filepath.Dir(target))); n != 1 {
		t.Errorf("%d mounts on the target after a second MountOverlay, want 1", n)
	}
	// Another flist on the same target is refused.
	other := buildFlist(t, tree{"bin/sh": "other"})
	if err := m.MountOverlay(ctx, other, rw, target); !errors.Is(err, ErrTargetBusy) {
		t.Errorf("overlay of another flist on a used target: %v, want ErrTargetBusy", err)
	}
	// A used read-only mount survives GC; the unused one (other) goes.
	if err := m.GC(); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(target, "etc/os-release")); got != "ID=test\n" {
		t.Errorf("after GC, overlay etc/os-release = %q", got)
	}
	if n := len(mountsUnder(t, root)); n != 1 {
		t.Errorf("after GC, %d read-only mounts, want 1", n)
	}

	if err := m.Unmount(target); err != nil {
		t.Fatal(err)
	}
	if ok, _ := (mount.Mounter{}).Mounted(target); ok {
		t.Error("target still mounted after Unmount")
	}
	if err := m.Unmount(target); err != nil {
		t.Errorf("second Unmount: %v", err)
	}
	// Data stays in rwDir for the next mount.
	if err := m.MountOverlay(ctx, fl, rw, target); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(target, "var/lib/data")); got != "new\n" {
		t.Errorf("remounted var/lib/data = %q", got)
	}
}

// TestRestart simulates a node restart: a new module over the same root
// finds the daemon and overlay of the first and keeps them.
func TestRestart(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	root := newRoot(t)
	h := newHub(t)
	url := h.build(t, "app.fl", rootfs)
	base := filepath.Dir(root)
	rw, target := filepath.Join(base, "vol"), filepath.Join(base, "vm/root")

	m1 := newModule(t, root, Config{Binary: zosBinary(t)})
	if err := m1.MountOverlay(ctx, url, rw, target); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "state"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file the VM holds open across the restart.
	f, err := os.Open(filepath.Join(target, "etc/hostname"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := daemonsOf(t, root)
	if err := m1.Close(); err != nil {
		t.Fatal(err)
	}

	m2 := newModule(t, root, Config{Binary: zosBinary(t)})
	dir, _, err := m2.MountRO(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if err := m2.MountOverlay(ctx, url, rw, target); err != nil {
		t.Fatal(err)
	}
	if after := daemonsOf(t, root); len(after) != 1 || len(before) != 1 || after[0] != before[0] {
		t.Errorf("daemons before restart %v, after %v: want the same one", before, after)
	}
	if got := h.count("app.fl"); got != 1 {
		t.Errorf("hub hit %d times, want 1 (the download is kept)", got)
	}
	if got := mustRead(t, filepath.Join(dir, "etc/hostname")); got != "flist\n" {
		t.Errorf("read-only etc/hostname = %q", got)
	}
	if got := mustRead(t, filepath.Join(target, "state")); got != "kept" {
		t.Errorf("overlay state = %q, want kept", got)
	}
	buf := make([]byte, 64)
	if n, err := f.ReadAt(buf, 0); string(buf[:n]) != "flist\n" {
		t.Errorf("open file after restart: %q, %v", buf[:n], err)
	}
	if n := len(mountsUnder(t, base)); n != 2 {
		t.Errorf("%d mounts, want 2 (read-only and overlay)", n)
	}
}

// TestRepair kills the daemon: the mount is dead (ENOTCONN), MountRO
// restarts it and MountOverlay replaces the overlay left on the dead layer.
func TestRepair(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	root := newRoot(t)
	fl := buildFlist(t, rootfs)
	base := filepath.Dir(root)
	rw, target := filepath.Join(base, "vol"), filepath.Join(base, "vm/root")
	m := newModule(t, root, Config{Binary: zosBinary(t)})
	if err := m.MountOverlay(ctx, fl, rw, target); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "state"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir, _, err := m.MountRO(ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	old := daemonsOf(t, root)
	if len(old) != 1 {
		t.Fatalf("daemons = %v, want one", old)
	}
	if err := daemon.Kill(old[0], marks(dir)...); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the daemon to die", func() (bool, error) { return !daemon.Alive(old[0]), nil })
	// The kernel answers ENOTCONN, ECONNABORTED or EIO depending on timing.
	if _, err := (mount.Mounter{}).Magic(dir); err == nil {
		t.Fatal("statfs of the dead mount succeeded")
	}

	if _, _, err := m.MountRO(ctx, fl); err != nil {
		t.Fatal(err)
	}
	now := daemonsOf(t, root)
	if len(now) != 1 || now[0] == old[0] {
		t.Errorf("daemons after repair = %v, want one new (old %d)", now, old[0])
	}
	if got := mustRead(t, filepath.Join(dir, "etc/hostname")); got != "flist\n" {
		t.Errorf("repaired etc/hostname = %q", got)
	}
	if err := m.MountOverlay(ctx, fl, rw, target); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(target, "etc/os-release")); got != "ID=test\n" {
		t.Errorf("overlay over the repaired mount: etc/os-release = %q", got)
	}
	if got := mustRead(t, filepath.Join(target, "state")); got != "kept" {
		t.Errorf("overlay state = %q, want kept", got)
	}
	// One read-only mount and one overlay: the dead ones were detached.
	if n := len(mountsUnder(t, base)); n != 2 {
		t.Errorf("%d mounts after repair, want 2: %+v", n, mountsUnder(t, base))
	}
}

func TestGC(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	root := newRoot(t)
	a := buildFlist(t, rootfs)
	b := buildFlist(t, tree{"bin/sh": "b", "etc/b": "b"})
	base := filepath.Dir(root)
	m := newModule(t, root, Config{Binary: zosBinary(t)})
	target := filepath.Join(base, "vm/root")
	if err := m.MountOverlay(ctx, a, filepath.Join(base, "vol"), target); err != nil {
		t.Fatal(err)
	}
	dirB, _, err := m.MountRO(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := daemonsOf(t, root); len(got) != 2 {
		t.Fatalf("daemons = %v, want two", got)
	}
	if err := m.GC(); err != nil {
		t.Fatal(err)
	}
	if got := daemonsOf(t, root); len(got) != 1 {
		t.Errorf("after GC daemons = %v, want one (a's)", got)
	}
	if _, err := os.Stat(dirB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("b's mount point after GC: %v, want removed", err)
	}
	if got := mustRead(t, filepath.Join(target, "etc/hostname")); got != "flist\n" {
		t.Errorf("overlay after GC: %q", got)
	}
	if err := m.Unmount(target); err != nil {
		t.Fatal(err)
	}
	if err := m.GC(); err != nil {
		t.Fatal(err)
	}
	if got := daemonsOf(t, root); len(got) != 0 {
		t.Errorf("after the last GC daemons = %v, want none", got)
	}
	if ms := mountsUnder(t, base); len(ms) != 0 {
		t.Errorf("mounts after the last GC: %+v", ms)
	}
	// The download stays: mounting again needs no network.
	if _, _, err := m.MountRO(ctx, b); err != nil {
		t.Fatal(err)
	}
}

func TestDaemonFailure(t *testing.T) {
	requireFUSE(t)
	ctx := context.Background()
	root := newRoot(t)
	fl := buildFlist(t, rootfs)
	// A "daemon" that exits at once: the error carries its output.
	fake := filepath.Join(t.TempDir(), "zos")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho cannot serve $@ >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newModule(t, root, Config{Binary: fake})
	_, _, err := m.MountRO(ctx, fl)
	if err == nil || !strings.Contains(err.Error(), "cannot serve flist mount") {
		t.Errorf("MountRO with a failing daemon: %v, want its output", err)
	}
	// One that never mounts: the start times out.
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho waiting flist mount $@\nwhile :; do sleep 0.1; done\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m = newModule(t, root, Config{Binary: fake, StartTimeout: 300 * time.Millisecond})
	_, _, err = m.MountRO(ctx, fl)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting flist mount") {
		t.Errorf("MountRO with a stuck daemon: %v, want a timeout with its output", err)
	}
	if got := daemonsOf(t, root); len(got) != 0 {
		t.Errorf("daemons left = %v", got)
	}
}
