package flist

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/zdb"
	sysfuse "github.com/zos-go/zos/internal/sys/fuse"
	"github.com/zos-go/zos/internal/sys/mount"
	"github.com/zos-go/zos/internal/testutil"
)

// runChroot runs busybox from the mount through chroot(8). The chroot goes
// through a host binary on purpose: forking straight into the mount would
// hold this process's thread in vfork while the child's exec waits for our
// own FUSE server, and a garbage collection in between deadlocks.
func runChroot(t *testing.T, root string, args ...string) string {
	t.Helper()
	chroot := testutil.RequireBinary(t, "chroot")
	cmd := exec.Command(chroot, append([]string{root, "/bin/busybox"}, args...)...)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot %s %v: %v: %s", root, args, err, out)
	}
	return string(out)
}

func TestRoundTripDir(t *testing.T) {
	src := busyboxTree(t)
	store, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, m := buildDir(t, src, store)
	mnt := mountMeta(t, m, MountConfig{Store: store})
	compareTrees(t, src, mnt.Dir)
	out := runChroot(t, mnt.Dir, "sh", "-c", "echo hello from $(cat /etc/passwd | head -1 | cut -d: -f1); sha256sum /usr/share/data/random.bin")
	if !strings.HasPrefix(out, "hello from root\n") {
		t.Errorf("chroot output %q", out)
	}
}

// startZDB serves a 0-db store with a password-protected namespace on
// loopback; restart stops and starts the server on the same address.
type zdbServer struct {
	t     testing.TB
	store *zdb.Store
	addr  string
	stop  func()
}

func startZDB(t testing.TB) *zdbServer {
	t.Helper()
	dir := t.TempDir()
	st, err := zdb.Open(zdb.Config{DataDir: dir + "/data", IndexDir: dir + "/index"}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.NamespaceCreate("flist", zdb.NamespaceOptions{Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	z := &zdbServer{t: t, store: st, addr: "127.0.0.1:0"}
	z.start()
	return z
}

func (z *zdbServer) start() {
	z.t.Helper()
	var ln net.Listener
	testutil.Eventually(z.t, 5*time.Second, "listening on "+z.addr+" (the old socket may linger briefly)", func() (bool, error) {
		var err error
		ln, err = net.Listen("tcp", z.addr)
		return err == nil, err
	})
	z.addr = ln.Addr().String()
	srv := zdb.NewServer(zdb.ServerConfig{}, testutil.Logger(z.t), z.store)
	z.stop = testutil.Go(z.t, "serving zdb", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
}

func (z *zdbServer) url() string { return "zdb://s3cret@" + z.addr + "/flist" }

func TestRoundTripZDB(t *testing.T) {
	testutil.RequireRoot(t)
	z := startZDB(t)
	src := busyboxTree(t)
	store, err := OpenStore(z.url(), StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, m := buildDir(t, src, store)
	if got := m.Routes[0].URL; strings.Contains(got, "s3cret") {
		t.Errorf("route %q keeps the password", got)
	}
	// The metadata routes carry no password: mount with the full URL.
	mnt := mountMeta(t, m, MountConfig{Store: store})
	compareTrees(t, src, mnt.Dir)
	if out := runChroot(t, mnt.Dir, "ls", "/bin"); !strings.Contains(out, "busybox") {
		t.Errorf("ls /bin in the chroot: %q", out)
	}

	// Bad password: a clear error, not a crash.
	bad, _ := OpenStore("zdb://wrong@"+z.addr+"/flist", StoreOptions{})
	defer bad.Close()
	if _, err := bad.Get(context.Background(), [HashSize]byte{1}); err == nil {
		t.Errorf("wrong password accepted")
	}
}

// TestStoreDown: the store goes away in the middle of reading a file: the
// read fails with EIO (and a logged reason), other cached files keep being
// served, and the same read works once the store is back.
func TestStoreDown(t *testing.T) {
	testutil.RequireRoot(t)
	z := startZDB(t)
	src := busyboxTree(t)
	store, _ := OpenStore(z.url(), StoreOptions{})
	defer store.Close()
	store.(*ZDBStore).timeout = 2 * time.Second // before the first call makes the client
	_, m := buildDir(t, src, store)
	mnt := mountMeta(t, m, MountConfig{Store: store, Prefetch: -1, FetchTimeout: 2 * time.Second})
	passwd, err := os.ReadFile(filepath.Join(mnt.Dir, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(mnt.Dir, "usr/share/data/random.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatalf("first block: %v", err)
	}
	z.stop()
	_, err = f.ReadAt(buf, 2*DefaultBlockSize)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the store down: got %v, want EIO", err)
	}
	if again, err := os.ReadFile(filepath.Join(mnt.Dir, "etc/passwd")); err != nil || !bytes.Equal(again, passwd) {
		t.Errorf("cached file while the store is down: %v", err)
	}
	z.start()
	if _, err := f.ReadAt(buf, 2*DefaultBlockSize); err != nil {
		t.Fatalf("read after the store came back: %v", err)
	}
	if hashFile(t, f.Name()) != hashFile(t, filepath.Join(src, "usr/share/data/random.bin")) {
		t.Errorf("content differs after recovery")
	}
}

// TestCorruptBlock: a block that does not match its id is EIO for the file
// that uses it; the mount keeps serving the rest, and never caches it.
func TestCorruptBlock(t *testing.T) {
	src := busyboxTree(t)
	store, _ := NewDirStore(t.TempDir())
	_, m := buildDir(t, src, store)
	in, _ := m.Lookup("usr/share/data/random.bin")
	p := store.paths(in.Blocks[1].ID)[0]
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), good...)
	bad[100] ^= 0xff
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	cache, err := NewCache(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	mnt := mountMeta(t, m, MountConfig{Store: store, Cache: cache})
	_, err = os.ReadFile(filepath.Join(mnt.Dir, "usr/share/data/random.bin"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("reading a file with a bad block: got %v, want EIO", err)
	}
	if _, ok := cache.Get(in.Blocks[1].ID); ok {
		t.Errorf("bad block cached")
	}
	compareFile(t, src, mnt.Dir, "etc/passwd")
	compareFile(t, src, mnt.Dir, "usr/share/data/zeros.bin")
	runChroot(t, mnt.Dir, "echo", "still serving")
	if mnt.FS.Stats().Errors == 0 {
		t.Errorf("no error counted")
	}
	// Repaired store: the same file reads fine (no negative caching).
	if err := os.WriteFile(p, good, 0o644); err != nil {
		t.Fatal(err)
	}
	compareFile(t, src, mnt.Dir, "usr/share/data/random.bin")
}

func compareFile(t *testing.T, a, b, rel string) {
	t.Helper()
	if hashFile(t, filepath.Join(a, rel)) != hashFile(t, filepath.Join(b, rel)) {
		t.Errorf("%s differs", rel)
	}
}

// TestSharedCache: a second mount of the flist is served from the cache the
// first one filled.
func TestSharedCache(t *testing.T) {
	src := busyboxTree(t)
	store, _ := NewDirStore(t.TempDir())
	_, m := buildDir(t, src, store)
	cache, err := NewCache(t.TempDir(), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	m1 := mountMeta(t, m, MountConfig{Store: store, Cache: cache})
	m2 := mountMeta(t, m, MountConfig{Store: store, Cache: cache})
	compareFile(t, src, m1.Dir, "usr/share/data/random.bin")
	compareFile(t, src, m2.Dir, "usr/share/data/random.bin")
	if s := m2.FS.Stats(); s.Fetched != 0 || s.CacheHits == 0 {
		t.Errorf("second mount stats %+v: want everything from the cache", s)
	}
	// The bound holds: a tiny cache keeps under its size.
	small, _ := NewCache(t.TempDir(), 600<<10)
	m3 := mountMeta(t, m, MountConfig{Store: store, Cache: small})
	compareFile(t, src, m3.Dir, "usr/share/data/random.bin")
	if small.Size() > 600<<10 {
		t.Errorf("cache holds %d bytes, bound %d", small.Size(), 600<<10)
	}
}

// TestWritableOverlay: a workload writes through an overlay; the flist
// stays as it was.
func TestWritableOverlay(t *testing.T) {
	src := busyboxTree(t)
	store, _ := NewDirStore(t.TempDir())
	_, m := buildDir(t, src, store)
	ro := mountMeta(t, m, MountConfig{Store: store})
	vol := t.TempDir()
	target := filepath.Join(vol, "root")
	rw, err := MountWritable(ro, filepath.Join(vol, "rw"), filepath.Join(vol, "wd"), target, mount.Mounter{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rw.Close(); err != nil {
			t.Errorf("unmounting overlay: %v", err)
		}
		_ = sysfuse.LazyUnmount(target)
	})
	runChroot(t, target, "sh", "-c", "echo changed > /etc/passwd; echo new > /tmp/new; rm /bin/ls")
	if b, _ := os.ReadFile(filepath.Join(target, "etc/passwd")); string(b) != "changed\n" {
		t.Errorf("overlay etc/passwd = %q", b)
	}
	compareFile(t, src, ro.Dir, "etc/passwd")
	if _, err := os.Lstat(filepath.Join(ro.Dir, "bin/ls")); err != nil {
		t.Errorf("lower bin/ls: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "rw/tmp/new")); string(b) != "new\n" {
		t.Errorf("upper tmp/new = %q", b)
	}
}

func TestUnpack(t *testing.T) {
	testutil.RequireRoot(t)
	src := busyboxTree(t)
	store, _ := NewDirStore(t.TempDir())
	_, m := buildDir(t, src, store)
	dst := filepath.Join(t.TempDir(), "out")
	if err := Unpack(context.Background(), m, store, dst); err != nil {
		t.Fatal(err)
	}
	compareTrees(t, src, dst)
	if err := Unpack(context.Background(), m, store, dst); err == nil {
		t.Errorf("unpacking over an existing tree succeeded")
	}
}

// TestMountLeaksNothing: after Close, the FUSE server and the prefetchers
// are gone.
func TestMountLeaksNothing(t *testing.T) {
	testutil.RequireRoot(t)
	src := busyboxTree(t)
	store, _ := NewDirStore(t.TempDir())
	_, m := buildDir(t, src, store)
	testutil.NoLeaks(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mnt, err := MountFS(dir, m, MountConfig{Store: store}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sysfuse.LazyUnmount(dir) })
	compareFile(t, src, dir, "usr/share/data/random.bin")
	if err := mnt.Close(); err != nil {
		t.Fatal(err)
	}
}
