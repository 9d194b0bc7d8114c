package fs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	sysfuse "github.com/zos-go/zos/internal/sys/fuse"
	"github.com/zos-go/zos/internal/testutil"
)

var errNotFound = errors.New("object not found")

// dirBackend is a real Backend over a directory: one file per object,
// written whole then renamed into place, so an object is there entirely
// or not at all. fail makes every call fail, as an unreachable backend.
type dirBackend struct {
	dir  string
	fail atomic.Bool

	mu   sync.Mutex // guards puts
	puts map[string]int
}

var _ Backend = (*dirBackend)(nil)

func newDirBackend(t testing.TB) *dirBackend {
	return &dirBackend{dir: t.TempDir(), puts: map[string]int{}}
}

var errBackendDown = errors.New("backend unreachable")

func (d *dirBackend) check(name string) error {
	if d.fail.Load() {
		return errBackendDown
	}
	if name != "" && (strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".")) {
		return fmt.Errorf("bad object name %q", name)
	}
	return nil
}

func (d *dirBackend) Put(_ context.Context, name string, data []byte) error {
	if err := d.check(name); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(d.dir, ".put-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(d.dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	d.mu.Lock()
	d.puts[name]++
	d.mu.Unlock()
	return nil
}

func (d *dirBackend) Get(_ context.Context, name string) ([]byte, error) {
	if err := d.check(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", name, errNotFound)
	}
	return b, err
}

func (d *dirBackend) Delete(_ context.Context, name string) error {
	if err := d.check(name); err != nil {
		return err
	}
	err := os.Remove(filepath.Join(d.dir, name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", name, errNotFound)
	}
	return err
}

func (d *dirBackend) List(_ context.Context, prefix string) ([]string, error) {
	if err := d.check(""); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), prefix) {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

// has reports whether the backend holds the object.
func (d *dirBackend) has(name string) bool {
	_, err := os.Stat(filepath.Join(d.dir, name))
	return err == nil
}

// hasRecord reports whether the backend holds metadata generation gen.
func (d *dirBackend) hasRecord(gen uint64) bool {
	return d.has(metaName(gen)) || d.has(jrnlName(gen))
}

func isNotFound(err error) bool { return errors.Is(err, errNotFound) }

func testConfig(t testing.TB, cacheSize int64) Config {
	return Config{
		CacheDir: filepath.Join(t.TempDir(), "cache"), CacheSize: cacheSize, IsNotFound: isNotFound,
		CheckpointInterval: 1 << 40, // only explicit syncs checkpoint: tests decide when
	}
}

// mountFS mounts a qsfs over backend; the cleanup unmounts without
// flushing (Unmount in the test flushes) even when the test failed.
func mountFS(t testing.TB, cfg Config, b Backend) *FS {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Skip(t, "no /dev/fuse")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Mount(cfg, b, dir, testutil.Logger(t))
	if err != nil {
		t.Fatalf("mounting: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Abort(); err != nil {
			t.Errorf("unmounting: %v", err)
		}
		_ = sysfuse.LazyUnmount(dir)
	})
	return f
}

// digest describes a tree: per path its type, permissions, owner, size,
// mtime, link count, content hash or link target.
func digest(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode=%o uid=%d gid=%d nlink=%d mtime=%d.%09d", st.Mode, st.Uid, st.Gid, st.Nlink, st.Mtim.Sec, st.Mtim.Nsec)
		switch st.Mode & syscall.S_IFMT {
		case syscall.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" size=%d sha256=%x", st.Size, sha256.Sum256(b))
		case syscall.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " target=" + target
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

func compareDigests(t testing.TB, got, want map[string]string) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		if got[p] != want[p] {
			t.Errorf("%s: got %q, want %q", p, got[p], want[p])
		}
	}
}

// randomBytes returns n bytes of a deterministic pseudo-random stream.
func randomBytes(n int, seed byte) []byte {
	out := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{seed}).Read(out)
	return out
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return b
}
