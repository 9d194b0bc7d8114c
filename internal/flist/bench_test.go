package flist

import (
	"context"
	"io"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// benchTree is the busybox tree plus about 64 MiB of files of mixed sizes,
// half incompressible, half text; FLIST_BENCH_SRC points at another tree
// (a debootstrap root, see scripts/bench/flist.sh).
func benchTree(b *testing.B) (string, int64) {
	b.Helper()
	if src := os.Getenv("FLIST_BENCH_SRC"); src != "" {
		return src, treeBytes(b, src)
	}
	root := busyboxTree(b)
	r := rand.New(rand.NewSource(42))
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; ", 100000))
	for i := 0; i < 40; i++ {
		n := 64<<10 + r.Intn(3<<20)
		buf := make([]byte, n)
		if i%2 == 0 {
			r.Read(buf)
		} else {
			copy(buf, text[r.Intn(1000):])
		}
		p := filepath.Join(root, "usr/lib/data", "f"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+".bin")
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	big := make([]byte, 64<<20)
	r.Read(big)
	if err := os.WriteFile(filepath.Join(root, "usr/lib/big.bin"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	return root, treeBytes(b, root)
}

func treeBytes(b *testing.B, root string) int64 {
	var n int64
	_ = filepath.Walk(root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// BenchmarkBuild: build throughput into a directory store (MB/s of file
// content).
func BenchmarkBuild(b *testing.B) {
	src, size := benchTree(b)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		store, _ := NewDirStore(b.TempDir())
		bl := NewBuilder(BuildConfig{}, store, testutil.Logger(b))
		if err := AddSource(context.Background(), bl, src); err != nil {
			b.Fatal(err)
		}
		if _, err := bl.Finish(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDedup: a second flist of the same tree plus two files; reports
// the share of the base's blocks the derived flist reuses and the bytes it
// adds to the store.
func BenchmarkDedup(b *testing.B) {
	src, _ := benchTree(b)
	for i := 0; i < b.N; i++ {
		store, _ := NewDirStore(b.TempDir())
		bl := NewBuilder(BuildConfig{}, store, testutil.Logger(b))
		if err := AddSource(context.Background(), bl, src); err != nil {
			b.Fatal(err)
		}
		base, _ := bl.Finish()
		baseStored := bl.Stats().Stored
		bl2 := NewBuilder(BuildConfig{}, store, testutil.Logger(b))
		if err := AddSource(context.Background(), bl2, src); err != nil {
			b.Fatal(err)
		}
		_ = bl2.Add(context.Background(), Entry{Path: "etc/app.conf", Mode: ModeRegular | 0o644}, strings.NewReader("port = 8080\n"))
		_ = bl2.Add(context.Background(), Entry{Path: "usr/bin/app", Mode: ModeRegular | 0o755}, io.LimitReader(rand.New(rand.NewSource(9)), 3<<20))
		derived, _ := bl2.Finish()
		bb, db := base.Blocks(), derived.Blocks()
		shared := 0
		for id := range bb {
			if _, ok := db[id]; ok {
				shared++
			}
		}
		// What the derived flist adds to a store that holds the base.
		var added uint64
		for id := range db {
			if _, ok := bb[id]; !ok {
				data, _ := store.Get(context.Background(), id)
				added += uint64(len(data))
			}
		}
		b.ReportMetric(float64(shared)/float64(len(bb)), "base_blocks_shared")
		b.ReportMetric(float64(added)/float64(baseStored), "added_vs_base_bytes")
		b.ReportMetric(float64(baseStored+added)/float64(2*baseStored), "stored_vs_two_copies")
	}
}

// hubStore serves a directory store over loopback HTTP the way the hub does
// (GET /ab/ID, where rfs reads too), so mounts pay for a network round trip
// per block.
func hubStore(b *testing.B, dir *DirStore) Store {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		id, err := ParseID(rest)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		data, err := dir.Get(r.Context(), id)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		_, _ = w.Write(data)
	}))
	b.Cleanup(srv.Close)
	s, _ := NewHTTPStore(srv.URL, nil)
	return s
}

func benchFlist(b *testing.B) (string, *Meta, *DirStore) {
	src, _ := benchTree(b)
	dir, _ := NewDirStore(b.TempDir())
	_, m := buildDir(b, src, dir)
	return src, m, dir
}

func chrootRun(b *testing.B, root string, args ...string) {
	cmd := exec.Command(testutil.RequireBinary(b, "chroot"), append([]string{root}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("chroot %v: %v: %s", args, err, out)
	}
}

// BenchmarkFirstRun: time until `/bin/busybox --help` (FLIST_BENCH_CMD) has run from a cold
// lazy mount, versus unpacking the whole tree first (both from a store
// over loopback HTTP); reports both and their ratio.
func BenchmarkFirstRun(b *testing.B) {
	testutil.RequireRoot(b)
	_, m, dir := benchFlist(b)
	store := hubStore(b, dir)
	cmd := strings.Fields(os.Getenv("FLIST_BENCH_CMD"))
	if len(cmd) == 0 {
		cmd = []string{"/bin/busybox", "--help"}
	}
	for i := 0; i < b.N; i++ {
		start := time.Now()
		mnt := mountMeta(b, m, MountConfig{Store: store})
		chrootRun(b, mnt.Dir, cmd...)
		lazy := time.Since(start)
		fetched := mnt.FS.Stats().FetchBytes

		start = time.Now()
		out := filepath.Join(b.TempDir(), "unpacked")
		if err := Unpack(context.Background(), m, store, out); err != nil {
			b.Fatal(err)
		}
		chrootRun(b, out, cmd...)
		unpack := time.Since(start)
		b.ReportMetric(float64(lazy.Milliseconds()), "lazy_ms")
		b.ReportMetric(float64(unpack.Milliseconds()), "unpack_ms")
		b.ReportMetric(float64(unpack)/float64(lazy), "unpack/lazy")
		b.ReportMetric(float64(fetched)/(1<<20), "lazy_fetched_MiB")
	}
}

// BenchmarkRead: sequential read throughput of a 64 MiB file through the
// mount: cold (blocks from the store over loopback HTTP, with and without
// prefetch) and warm (a fresh mount served from the shared disk cache).
func BenchmarkRead(b *testing.B) {
	testutil.RequireRoot(b)
	_, m, dir := benchFlist(b)
	in, ok := m.Lookup("usr/lib/big.bin")
	if !ok {
		testutil.Skip(b, "no usr/lib/big.bin in FLIST_BENCH_SRC")
	}
	store := hubStore(b, dir)
	readAll := func(mnt *Mount) float64 {
		start := time.Now()
		f, err := os.Open(filepath.Join(mnt.Dir, "usr/lib/big.bin"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		n, err := io.CopyBuffer(io.Discard, f, make([]byte, 1<<20))
		if err != nil || n != int64(in.Size) {
			b.Fatalf("read %d of %d: %v", n, in.Size, err)
		}
		return float64(n) / 1e6 / time.Since(start).Seconds()
	}
	for i := 0; i < b.N; i++ {
		noPrefetch := readAll(mountMeta(b, m, MountConfig{Store: store, Prefetch: -1}))
		cache, err := NewCache(b.TempDir(), 1<<30)
		if err != nil {
			b.Fatal(err)
		}
		cold := readAll(mountMeta(b, m, MountConfig{Store: store, Cache: cache}))
		warm := readAll(mountMeta(b, m, MountConfig{Store: store, Cache: cache}))
		b.ReportMetric(noPrefetch, "cold_noprefetch_MB/s")
		b.ReportMetric(cold, "cold_MB/s")
		b.ReportMetric(warm, "warm_MB/s")
	}
}

// BenchmarkOpenBlock: CPU cost of checking and opening one 512 KiB block
// (id hash, AES-GCM, snappy, key hash), the floor of any read path.
func BenchmarkOpenBlock(b *testing.B) {
	plain := make([]byte, DefaultBlockSize)
	rand.New(rand.NewSource(1)).Read(plain)
	ref, data, err := SealBlock(plain)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := OpenBlock(ref, data); err != nil {
			b.Fatal(err)
		}
	}
}
