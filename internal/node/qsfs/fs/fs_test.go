package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// TestPOSIXOperations drives every operation through the kernel and checks
// what a reader sees.
func TestPOSIXOperations(t *testing.T) {
	b := newDirBackend(t)
	f := mountFS(t, testConfig(t, 16<<20), b)
	m := f.Dir()
	p := func(s string) string { return filepath.Join(m, s) }

	t.Run("create write read", func(t *testing.T) {
		data := randomBytes(3<<20+123, 1)
		writeFile(t, p("a"), data)
		if got := readFile(t, p("a")); !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, differing from the %d written", len(got), len(data))
		}
		// An overwrite in the middle of a block keeps the rest.
		fh, err := os.OpenFile(p("a"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt([]byte("hello"), 1<<20+10); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		copy(data[1<<20+10:], "hello")
		if got := readFile(t, p("a")); !bytes.Equal(got, data) {
			t.Fatal("overwrite in the middle: content differs")
		}
	})
	t.Run("truncate", func(t *testing.T) {
		data := randomBytes(2<<20, 2)
		writeFile(t, p("t"), data)
		if err := os.Truncate(p("t"), 1<<20+5); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p("t"), 1<<20+100); err != nil {
			t.Fatal(err)
		}
		want := append(append([]byte{}, data[:1<<20+5]...), make([]byte, 95)...)
		if got := readFile(t, p("t")); !bytes.Equal(got, want) {
			t.Fatalf("shrunk then grown: got %d bytes, want %d with zeros past the cut", len(got), len(want))
		}
		fh, err := os.OpenFile(p("t"), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.Close()
		if st, _ := os.Stat(p("t")); st.Size() != 0 {
			t.Fatalf("O_TRUNC: got size %d, want 0", st.Size())
		}
	})
	t.Run("sparse", func(t *testing.T) {
		fh, err := os.Create(p("sparse"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt([]byte("end"), 100<<20); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		var st syscall.Stat_t
		if err := syscall.Stat(p("sparse"), &st); err != nil {
			t.Fatal(err)
		}
		if st.Size != 100<<20+3 || st.Blocks*512 > 2<<20 {
			t.Fatalf("got size %d and %d bytes allocated, want %d and at most one block", st.Size, st.Blocks*512, 100<<20+3)
		}
		fh, _ = os.Open(p("sparse"))
		buf := make([]byte, 4096)
		if _, err := fh.ReadAt(buf, 50<<20); err != nil || !bytes.Equal(buf, make([]byte, 4096)) {
			t.Fatalf("hole: got err %v or non-zero bytes", err)
		}
		fh.Close()
	})
	t.Run("rename unlink", func(t *testing.T) {
		writeFile(t, p("r1"), []byte("one"))
		writeFile(t, p("r2"), []byte("two"))
		if err := os.Rename(p("r1"), p("r2")); err != nil {
			t.Fatal(err)
		}
		if got := string(readFile(t, p("r2"))); got != "one" {
			t.Fatalf("renamed over: got %q, want %q", got, "one")
		}
		if _, err := os.Stat(p("r1")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old name: got %v, want not exist", err)
		}
		if err := os.Remove(p("r2")); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p("r2")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("unlinked: got %v, want not exist", err)
		}
	})
	t.Run("unlinked while open", func(t *testing.T) {
		writeFile(t, p("u"), []byte("still here"))
		fh, err := os.Open(p("u"))
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		if err := os.Remove(p("u")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 10)
		if _, err := fh.ReadAt(buf, 0); err != nil || string(buf) != "still here" {
			t.Fatalf("read after unlink: got %q, %v", buf, err)
		}
	})
	t.Run("mkdir rmdir", func(t *testing.T) {
		if err := os.MkdirAll(p("d/e/f"), 0o750); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p("d/e/f/x"), []byte("x"))
		if err := syscall.Rmdir(p("d/e/f")); err != syscall.ENOTEMPTY {
			t.Fatalf("rmdir of a full directory: got %v, want ENOTEMPTY", err)
		}
		if err := os.Rename(p("d/e"), p("d/e/f/g")); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("moving a directory below itself: got %v, want EINVAL", err)
		}
		if err := os.Rename(p("d/e/f"), p("d/f2")); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		syscall.Stat(p("d"), &st)
		if st.Nlink != 4 {
			t.Fatalf("d's links: got %d, want 4 (itself, its entry, e/.., f2/..)", st.Nlink)
		}
		if err := os.RemoveAll(p("d")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("symlink link", func(t *testing.T) {
		writeFile(t, p("target"), []byte("content"))
		if err := os.Symlink("target", p("sym")); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(p("sym")); err != nil || got != "target" {
			t.Fatalf("readlink: got %q, %v; want target", got, err)
		}
		if got := string(readFile(t, p("sym"))); got != "content" {
			t.Fatalf("through the symlink: got %q", got)
		}
		if err := os.Link(p("target"), p("hard")); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		syscall.Stat(p("hard"), &st)
		if st.Nlink != 2 {
			t.Fatalf("hard link count: got %d, want 2", st.Nlink)
		}
		writeFile(t, p("hard"), []byte("changed"))
		if got := string(readFile(t, p("target"))); got != "changed" {
			t.Fatalf("write through one link, read through the other: got %q", got)
		}
	})
	t.Run("chmod chown utimes", func(t *testing.T) {
		writeFile(t, p("attr"), []byte("a"))
		// chown before chmod: a chown drops the setuid bit
		if err := os.Lchown(p("attr"), 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p("attr"), 0o4751); err != nil {
			t.Fatal(err)
		}
		mt := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
		if err := os.Chtimes(p("attr"), mt, mt); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		syscall.Stat(p("attr"), &st)
		if st.Mode != syscall.S_IFREG|0o4751 || st.Uid != 1234 || st.Gid != 5678 || st.Mtim.Nano() != mt.UnixNano() {
			t.Fatalf("got mode %o uid %d gid %d mtime %d, want %o 1234 5678 %d", st.Mode, st.Uid, st.Gid, st.Mtim.Nano(), syscall.S_IFREG|0o4751, mt.UnixNano())
		}
	})
	t.Run("mknod fifo", func(t *testing.T) {
		if err := syscall.Mkfifo(p("fifo"), 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := os.Lstat(p("fifo"))
		if err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			t.Fatalf("got %v, %v; want a named pipe", st, err)
		}
	})
	t.Run("readdir", func(t *testing.T) {
		os.Mkdir(p("list"), 0o755)
		var want []string
		for i := range 50 {
			n := fmt.Sprintf("f%03d", i)
			want = append(want, n)
			writeFile(t, p("list/"+n), nil)
		}
		des, err := os.ReadDir(p("list"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, de := range des {
			got = append(got, de.Name())
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if err := os.Mkdir(p("list/f001"), 0o755); !errors.Is(err, os.ErrExist) {
			t.Fatalf("mkdir over a file: got %v, want exist", err)
		}
	})

	// Everything above survives a flush and a mount from the backend alone.
	want := digest(t, m)
	if err := f.Unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	g := mountFS(t, testConfig(t, 16<<20), b)
	compareDigests(t, digest(t, g.Dir()), want)
}

// TestFsyncDurable checks that when fsync or close returns, the backend
// holds every block of the content and a checkpoint naming it.
func TestFsyncDurable(t *testing.T) {
	b := newDirBackend(t)
	f := mountFS(t, testConfig(t, 16<<20), b)
	data := randomBytes(3<<20+7, 3)
	fh, err := os.Create(filepath.Join(f.Dir(), "synced"))
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := fh.Sync(); err != nil {
		t.Fatalf("fsync: %v", err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		blk := data[off:min(off+1<<20, len(data))]
		if name := blockName(sha256.Sum256(blk)); !b.has(name) {
			t.Errorf("after fsync the backend lacks block at %d (%s)", off, name)
		}
	}
	gen := f.Stats().Generation
	if gen == 0 || !b.hasRecord(gen) {
		t.Fatalf("after fsync the backend lacks metadata record %d", gen)
	}

	// close after write is a sync too
	small := []byte("closed and durable")
	writeFile(t, filepath.Join(f.Dir(), "closed"), small)
	if name := blockName(sha256.Sum256(small)); !b.has(name) {
		t.Fatalf("after close the backend lacks the block %s", name)
	}
	if g := f.Stats().Generation; g <= gen || !b.hasRecord(g) {
		t.Fatalf("after close: generation %d (before %d), record present %v", g, gen, b.hasRecord(g))
	}
}

// TestJournalFolds writes many small files, each closed (a journal record
// each): full checkpoints replace the journal as it grows, the backend
// keeps a bounded number of records, and a new node reads the same tree.
func TestJournalFolds(t *testing.T) {
	b := newDirBackend(t)
	f := mountFS(t, testConfig(t, 8<<20), b)
	for i := range 400 {
		writeFile(t, filepath.Join(f.Dir(), fmt.Sprintf("file-with-a-longish-name-%04d", i)), []byte(fmt.Sprint(i)))
	}
	if err := os.Remove(filepath.Join(f.Dir(), "file-with-a-longish-name-0007")); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	fulls, _ := b.List(context.Background(), metaPrefix)
	jrnls, _ := b.List(context.Background(), jrnlPrefix)
	if gen := f.Stats().Generation; len(fulls) != 1 || len(jrnls) >= 200 || gen < 401 {
		t.Fatalf("got %d full checkpoints, %d journal records at generation %d; want 1, under 200, at least 401", len(fulls), len(jrnls), gen)
	}
	want := digest(t, f.Dir())
	if err := f.Abort(); err != nil { // no flush: the records are all there is
		t.Fatal(err)
	}
	compareDigests(t, digest(t, mountFS(t, testConfig(t, 8<<20), b).Dir()), want)
}

// TestLargeFileThroughSmallCache writes a file six times the cache: the
// writer streams blocks out as they fill, the cache stays near its bound,
// and the file reads back from the backend.
func TestLargeFileThroughSmallCache(t *testing.T) {
	b := newDirBackend(t)
	cfg := testConfig(t, 4<<20)
	cfg.OpenBlocks = 2
	f := mountFS(t, cfg, b)
	data := randomBytes(24<<20, 4)
	writeFile(t, filepath.Join(f.Dir(), "big"), data)
	st := f.Stats()
	if st.CacheBytes > st.CacheMax {
		t.Errorf("cache holds %d bytes, over its bound %d", st.CacheBytes, st.CacheMax)
	}
	if st.Evictions < 10 || st.BacklogBlocks != 0 || st.Uploads < 24 {
		t.Errorf("got %d evictions, %d blocks backlog, %d uploads; want at least 10, 0, 24", st.Evictions, st.BacklogBlocks, st.Uploads)
	}
	if got := readFile(t, filepath.Join(f.Dir(), "big")); !bytes.Equal(got, data) {
		t.Fatal("large file reads back different")
	}
	if st := f.Stats(); st.Fetches < 18 || st.CacheBytes > st.CacheMax {
		t.Errorf("reading back: %d fetches, cache %d of %d; want at least 18 fetches within the bound", st.Fetches, st.CacheBytes, st.CacheMax)
	}
}

// TestRemountFromBackendAlone builds a tree, unmounts, destroys the cache
// and mounts the backend on a fresh node: every byte and attribute comes
// back; blocks nothing names any more are gone from the backend.
func TestRemountFromBackendAlone(t *testing.T) {
	testutil.NoLeaks(t)
	b := newDirBackend(t)
	cfg := testConfig(t, 8<<20)
	f := mountFS(t, cfg, b)
	m := f.Dir()
	os.MkdirAll(filepath.Join(m, "etc/conf.d"), 0o755)
	writeFile(t, filepath.Join(m, "etc/conf.d/a.conf"), []byte("a=1\n"))
	writeFile(t, filepath.Join(m, "big"), randomBytes(20<<20+5, 5))
	writeFile(t, filepath.Join(m, "gone"), randomBytes(2<<20, 6))
	os.Symlink("../big", filepath.Join(m, "etc/link"))
	os.Link(filepath.Join(m, "etc/conf.d/a.conf"), filepath.Join(m, "hard"))
	os.Chown(filepath.Join(m, "etc"), 42, 43)
	if err := os.Remove(filepath.Join(m, "gone")); err != nil {
		t.Fatal(err)
	}
	want := digest(t, m)
	if err := f.Unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	if err := os.RemoveAll(cfg.CacheDir); err != nil {
		t.Fatal(err)
	}
	gone := randomBytes(2<<20, 6)
	for off := 0; off < len(gone); off += 1 << 20 {
		if name := blockName(sha256.Sum256(gone[off : off+1<<20])); b.has(name) {
			t.Errorf("block %s of the removed file is still on the backend", name)
		}
	}

	g := mountFS(t, testConfig(t, 8<<20), b)
	compareDigests(t, digest(t, g.Dir()), want)
	if st := g.Stats(); st.Fetches < 21 {
		t.Errorf("fetches: got %d, want at least 21 (every block from the backend)", st.Fetches)
	}
}

// TestCrashKeepsLastCheckpoint aborts without a flush: what was synced is
// there, what was not is absent, and the tree is whole.
func TestCrashKeepsLastCheckpoint(t *testing.T) {
	testutil.NoLeaks(t)
	b := newDirBackend(t)
	f := mountFS(t, testConfig(t, 8<<20), b)
	writeFile(t, filepath.Join(f.Dir(), "synced"), []byte("kept"))
	want := digest(t, f.Dir())
	if err := os.Mkdir(filepath.Join(f.Dir(), "unsynced"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	g := mountFS(t, testConfig(t, 8<<20), b)
	compareDigests(t, digest(t, g.Dir()), want)
}

// TestBackendFailure makes the backend fail: fsync, unmount and cold
// reads are errors while nothing acknowledged is lost, and everything
// completes once it is back.
func TestBackendFailure(t *testing.T) {
	b := newDirBackend(t)
	cfg := testConfig(t, 8<<20)
	cfg.OpTimeout = 2 * time.Second
	f := mountFS(t, cfg, b)
	m := f.Dir()
	acked := randomBytes(2<<20, 7)
	writeFile(t, filepath.Join(m, "acked"), acked)

	b.fail.Store(true)
	later := randomBytes(1<<20+9, 8)
	fh, err := os.Create(filepath.Join(m, "later"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.Write(later); err != nil {
		t.Fatalf("write into the cache: %v", err)
	}
	if err := fh.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync with the backend down: got %v, want EIO", err)
	}
	if err := f.Unmount(); err == nil {
		t.Fatal("unmount with the backend down: got nil, want a flush error")
	}
	if got := readFile(t, filepath.Join(m, "later")); !bytes.Equal(got, later) {
		t.Fatal("unsynced data not readable from the cache while the backend is down")
	}
	b.fail.Store(false)
	if err := fh.Sync(); err != nil {
		t.Fatalf("fsync with the backend back: %v", err)
	}
	fh.Close()
	if err := f.Unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}

	// A fresh node: metadata comes, then the backend fails for a cold read.
	g := mountFS(t, testConfig(t, 8<<20), b)
	b.fail.Store(true)
	if _, err := os.ReadFile(filepath.Join(g.Dir(), "acked")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("cold read with the backend down: got %v, want EIO", err)
	}
	b.fail.Store(false)
	if got := readFile(t, filepath.Join(g.Dir(), "acked")); !bytes.Equal(got, acked) {
		t.Fatal("acked file differs after the backend came back")
	}
	if got := readFile(t, filepath.Join(g.Dir(), "later")); !bytes.Equal(got, later) {
		t.Fatal("file synced after the outage differs")
	}
}

// TestConcurrentWriters has writers on their own files and on disjoint
// ranges of a shared one, while another syncs; all of it reads back, also
// after a remount.
func TestConcurrentWriters(t *testing.T) {
	b := newDirBackend(t)
	cfg := testConfig(t, 6<<20)
	cfg.OpenBlocks = 3
	f := mountFS(t, cfg, b)
	m := f.Dir()
	shared, err := os.Create(filepath.Join(m, "shared"))
	if err != nil {
		t.Fatal(err)
	}
	const writers, part = 4, 3<<20 + 4096
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers+1)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randomBytes(part, byte(10+i))
			if err := os.WriteFile(filepath.Join(m, fmt.Sprintf("own%d", i)), data, 0o644); err != nil {
				errs <- err
				return
			}
			for off := 0; off < part; off += 64 << 10 {
				if _, err := shared.WriteAt(data[off:min(off+64<<10, part)], int64(i*part+off)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 5 {
			if err := f.Sync(context.Background()); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := shared.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(dir string) {
		all := readFile(t, filepath.Join(dir, "shared"))
		for i := range writers {
			data := randomBytes(part, byte(10+i))
			if got := readFile(t, filepath.Join(dir, fmt.Sprintf("own%d", i))); !bytes.Equal(got, data) {
				t.Errorf("own%d differs", i)
			}
			if !bytes.Equal(all[i*part:(i+1)*part], data) {
				t.Errorf("shared part %d differs", i)
			}
		}
	}
	check(m)
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}
	check(mountFS(t, testConfig(t, 6<<20), b).Dir())
}

// TestBadCheckpoint refuses to mount a backend whose newest checkpoint is
// malformed, and changes nothing on it.
func TestBadCheckpoint(t *testing.T) {
	testutil.RequireRoot(t)
	b := newDirBackend(t)
	if err := b.Put(context.Background(), metaName(3), []byte(`{"version":1,"gen":3,"full":true,"block_size":1048576,"next_ino":2,"inodes":{}}`)); err != nil {
		t.Fatal(err)
	}
	_, err := Mount(testConfig(t, 8<<20), b, t.TempDir(), testutil.Logger(t))
	testutil.WantError(t, err, "no root directory")
	names, _ := b.List(context.Background(), "")
	sort.Strings(names)
	if fmt.Sprint(names) != fmt.Sprint([]string{metaName(3)}) {
		t.Fatalf("backend after a refused mount: got %v, want only the bad checkpoint", names)
	}
}

// TestJournalGap refuses to load a tree whose journal lacks a record in
// the middle (later records cannot be laid over a hole), and deletes
// nothing.
func TestJournalGap(t *testing.T) {
	b := newDirBackend(t)
	f := mountFS(t, testConfig(t, 8<<20), b)
	for i := range 4 {
		writeFile(t, filepath.Join(f.Dir(), fmt.Sprint(i)), []byte{byte(i)})
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	jrnls, _ := b.List(context.Background(), jrnlPrefix)
	if len(jrnls) < 3 {
		t.Fatalf("got journal %v, want at least 3 records", jrnls)
	}
	sort.Strings(jrnls)
	if err := b.Delete(context.Background(), jrnls[1]); err != nil {
		t.Fatal(err)
	}
	before, _ := b.List(context.Background(), "")
	_, err := New(testConfig(t, 8<<20), b, testutil.Logger(t))
	testutil.WantError(t, err, "is missing before record")
	after, _ := b.List(context.Background(), "")
	if len(after) != len(before) {
		t.Fatalf("backend objects: got %d after the refused load, want %d", len(after), len(before))
	}
}

// TestFullCacheBackendDown: with the cache full of dirty blocks and the
// backend down, a write that needs room is EIO (not acknowledged); the
// bytes written before it are kept and reach the backend once it is back.
func TestFullCacheBackendDown(t *testing.T) {
	b := newDirBackend(t)
	cfg := testConfig(t, 4<<20)
	cfg.OpenBlocks = 1
	f := mountFS(t, cfg, b)
	p := filepath.Join(f.Dir(), "big")
	data := randomBytes(16<<20, 11)
	b.fail.Store(true)
	fh, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	written := 0
	for ; written < len(data); written += 1 << 20 {
		if _, err = fh.Write(data[written : written+1<<20]); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.EIO) || written >= len(data) {
		t.Fatalf("writing 16 MiB through a 4 MiB cache with the backend down: got %v after %d bytes, want EIO before the end", err, written)
	}
	b.fail.Store(false)
	if _, err := fh.WriteAt(data[written:], int64(written)); err != nil {
		t.Fatalf("writing the rest with the backend back: %v", err)
	}
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	want := digest(t, f.Dir())
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}
	g := mountFS(t, testConfig(t, 4<<20), b)
	compareDigests(t, digest(t, g.Dir()), want)
	if !bytes.Equal(readFile(t, filepath.Join(g.Dir(), "big")), data) {
		t.Fatal("the file read back from the backend differs from what was written")
	}
}
