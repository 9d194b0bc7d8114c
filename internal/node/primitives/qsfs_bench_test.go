package primitives

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/testutil"
	"golang.org/x/sys/unix"
)

// BenchmarkQSFS measures a qsfs as the workload manager mounts it (real
// FUSE, its cache on a btrfs volume of the node's pool, 1 MiB blocks, 4 MiB
// chunks, 4 of 6 shards over 6 data and 3 meta 0-db servers of this
// process on loopback, sync always) against a plain btrfs volume of the
// same pool, each figure the median of ZOS_BENCH_ROUNDS rounds (3) with
// the spread:
//
//   - sequential write of a ZOS_BENCH_QSFS_MIB file (256) in 1 MiB writes,
//     fsync and close (for the qsfs: on the backends' quorum);
//   - sequential read of it, the page cache of the file, of the qsfs
//     cache's block files and of the disk image behind the pool (and,
//     for reads from the backends, of the backends' files) dropped first:
//     the plain volume from its disk, the qsfs from its local cache, then
//     from the backends alone (the workload deprovisioned and provisioned
//     again: an empty cache);
//   - recovery of ZOS_BENCH_RECOVER_MIB (1024) onto a new node: a new
//     workload with the same config and an empty cache, from Provision
//     until the whole file has been read back and compared; the
//     Provision alone (the engine loading every metadata record, the file
//     system its tree) is shown apart.
//
// It runs alone (make bench runs it after the other benchmarks):
//
//	ZOS_BENCH_QSFS=1 go test -run '^$' -bench QSFS -benchtime 1x ./internal/node/primitives/
func BenchmarkQSFS(b *testing.B) {
	if os.Getenv("ZOS_BENCH_QSFS") != "1" {
		b.Skip("runs alone, with ZOS_BENCH_QSFS=1 (make bench does)")
	}
	testutil.RequireRoot(b)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Skip(b, "no /dev/fuse")
	}
	size := envInt(b, "ZOS_BENCH_QSFS_MIB", 256) << 20
	recoverSize := envInt(b, "ZOS_BENCH_RECOVER_MIB", 1024) << 20
	rounds := envInt(b, "ZOS_BENCH_ROUNDS", 3)
	for range b.N {
		benchQSFS(b, size, recoverSize, rounds)
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// figures collects the rounds of each measure, in the order first met.
type figures struct {
	order []string
	vals  map[string][]float64
	unit  map[string]string
}

func (f *figures) add(name, unit string, v float64) {
	if f.vals == nil {
		f.vals, f.unit = map[string][]float64{}, map[string]string{}
	}
	if _, ok := f.vals[name]; !ok {
		f.order = append(f.order, name)
	}
	f.vals[name] = append(f.vals[name], v)
	f.unit[name] = unit
}

func (f *figures) median(name string) float64 {
	v := slices.Sorted(slices.Values(f.vals[name]))
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func benchQSFS(b *testing.B, size, recoverSize, rounds int) {
	st := startStorage(b, storage.HostedDisk{Type: storage.SSD, Size: 16 << 30})
	c := newQSCluster(b)
	m := NewQSFSManager(QSFSConfig{Root: b.TempDir(), Egress: loopbackPolicy(), Timeout: 30 * time.Second}, st, testutil.Logger(b))
	b.Cleanup(func() {
		if err := m.Close(); err != nil {
			b.Errorf("closing the qsfs manager: %v", err)
		}
	})
	plain, err := st.VolumeCreate("bench-plain", uint64(size)*2)
	if err != nil {
		b.Fatal(err)
	}
	// The cache holds the whole file: the cached read is the cache's.
	const cache = 1 << 30
	wl := workload(7, "benchqs", gridtypes.QuantumSafeFSType, gridtypes.QuantumSafeFS{Cache: cache, Config: c.conf})
	ctx := context.Background()
	provisionBench := func(wl *provision.Workload) string {
		res, err := m.Provision(ctx, wl)
		if err != nil {
			b.Fatalf("provisioning %s: %v", wl.Name, err)
		}
		return res.(gridtypes.QuantumSafeFSResult).Path
	}
	deprovision := func(wl *provision.Workload) {
		if err := m.Deprovision(ctx, wl); err != nil {
			b.Fatalf("deprovisioning %s: %v", wl.Name, err)
		}
	}
	mbs := func(n int, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
	var fig figures
	b.ResetTimer()
	for r := range rounds {
		data := benchData(size, uint64(r))
		p := filepath.Join(plain.Path, "f")
		fig.add("plain write+fsync", "MB/s", mbs(size, timed(func() { benchWrite(b, p, data) })))
		dropCache(b, p)
		dropDisk(b, p)
		fig.add("plain read (page cache dropped)", "MB/s", mbs(size, timed(func() { benchRead(b, p, data) })))
		os.Remove(p)

		dir := provisionBench(wl)
		q := filepath.Join(dir, "f")
		fig.add("qsfs write+fsync (on the backends)", "MB/s", mbs(size, timed(func() { benchWrite(b, q, data) })))
		vol, err := st.VolumeLookup(qsfsVolume(wl.ID))
		if err != nil {
			b.Fatal(err)
		}
		dropCache(b, q)
		dropCacheDir(b, filepath.Join(vol.Path, "cache"))
		dropDisk(b, vol.Path)
		fig.add("qsfs read from the local cache", "MB/s", mbs(size, timed(func() { benchRead(b, q, data) })))
		// A new, empty cache: every block comes from the backends.
		deprovision(wl)
		dir = provisionBench(wl)
		c.dropCache(b)
		fig.add("qsfs read from the backends", "MB/s", mbs(size, timed(func() { benchRead(b, filepath.Join(dir, "f"), data) })))
		if err := os.Remove(filepath.Join(dir, "f")); err != nil {
			b.Fatal(err)
		}
		deprovision(wl)
	}

	// Recovery: written once by one workload, recovered by a new one
	// (another id, so another cache volume: a new node) each round.
	data := benchData(recoverSize, 99)
	dir := provisionBench(wl)
	writeTime := timed(func() { benchWrite(b, filepath.Join(dir, "big"), data) })
	deprovision(wl)
	for r := range rounds {
		nwl := workload(7, fmt.Sprintf("recoverSize%d", r), gridtypes.QuantumSafeFSType, gridtypes.QuantumSafeFS{Cache: cache, Config: c.conf})
		var ndir string
		c.dropCache(b)
		start := time.Now()
		fig.add("recovery: provision (metadata load)", "s", timed(func() { ndir = provisionBench(nwl) }).Seconds())
		benchRead(b, filepath.Join(ndir, "big"), data)
		fig.add(fmt.Sprintf("recovery of %d MiB onto a new node", recoverSize>>20), "s", time.Since(start).Seconds())
		deprovision(nwl)
	}
	b.StopTimer()

	b.Logf("qsfs vs a plain btrfs volume, %d MiB file, median of %d rounds [min-max]; %d MiB written in %.1f s before recovery",
		size>>20, rounds, recoverSize>>20, writeTime.Seconds())
	plainW, plainR := fig.median("plain write+fsync"), fig.median("plain read (page cache dropped)")
	for _, name := range fig.order {
		v := fig.vals[name]
		line := fmt.Sprintf("%-40s %8.2f %-4s [%.2f-%.2f]", name, fig.median(name), fig.unit[name], slices.Min(v), slices.Max(v))
		switch name {
		case "qsfs write+fsync (on the backends)":
			line += fmt.Sprintf("  = %.2f x plain write", fig.median(name)/plainW)
		case "qsfs read from the local cache", "qsfs read from the backends":
			line += fmt.Sprintf("  = %.2f x plain read", fig.median(name)/plainR)
		}
		b.Log(line)
	}
	b.ReportMetric(fig.median("qsfs write+fsync (on the backends)")/plainW, "write-ratio")
	b.ReportMetric(fig.median("qsfs read from the local cache")/plainR, "cached-read-ratio")
	b.ReportMetric(fig.median("qsfs read from the backends")/plainR, "backend-read-ratio")
	b.ReportMetric(fig.median(fmt.Sprintf("recovery of %d MiB onto a new node", recoverSize>>20)), "recover-s")
}

// dropCache evicts the backends' files from the page cache: reads come
// from the disk, as on nodes that did not just write them.
func (c *qsCluster) dropCache(b *testing.B) {
	for _, g := range append(slices.Clone(c.groups), c.meta) {
		for _, be := range g {
			dropCacheDir(b, be.dir)
		}
	}
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// benchData is n incompressible bytes, different per seed.
func benchData(n int, seed uint64) []byte {
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'q', 's'})
	data := make([]byte, n)
	rng.Read(data)
	return data
}

// benchWrite writes the file in 1 MiB writes, fsyncs and closes it.
func benchWrite(b *testing.B, p string, data []byte) {
	fh, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	// Closed on failure too: a file left open on the mount would hang
	// this process's exit (its own FUSE server is gone by then).
	defer fh.Close()
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := fh.Write(data[off:min(off+1<<20, len(data))]); err != nil {
			b.Fatalf("writing %s: %v", p, err)
		}
	}
	if err := fh.Sync(); err != nil {
		b.Fatalf("fsync %s: %v", p, err)
	}
	if err := fh.Close(); err != nil {
		b.Fatalf("closing %s: %v", p, err)
	}
}

// benchRead reads the file in 1 MiB reads and checks it is want.
func benchRead(b *testing.B, p string, want []byte) {
	fh, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	off := 0
	for {
		n, err := io.ReadFull(fh, buf)
		if n > 0 {
			if off+n > len(want) || !bytes.Equal(buf[:n], want[off:off+n]) {
				b.Fatalf("%s: bytes at %d differ from what was written", p, off)
			}
			off += n
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			b.Fatalf("reading %s: %v", p, err)
		}
	}
	if off != len(want) {
		b.Fatalf("%s: read %d bytes, want %d", p, off, len(want))
	}
}

// dropCache evicts one file from the page cache.
func dropCache(b *testing.B, p string) {
	fh, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	if err := fh.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := unix.Fadvise(int(fh.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
}

// dropCacheDir evicts every file under dir from the page cache.
func dropCacheDir(b *testing.B, dir string) {
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.Type().IsRegular() {
			dropCache(b, p)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
}

// dropDisk evicts from the page cache the file behind the loop device
// holding path (the hosted disk image): a read of the volume then comes
// from the machine's disk, as on a node with a real one.
func dropDisk(b *testing.B, path string) {
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		b.Fatal(err)
	}
	var dev, at string
	for _, line := range strings.Split(string(mi), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 0 || len(f) < sep+3 {
			continue
		}
		if mp := f[4]; (path == mp || strings.HasPrefix(path, mp+"/")) && len(mp) > len(at) {
			dev, at = f[sep+2], mp
		}
	}
	if !strings.HasPrefix(dev, "/dev/loop") {
		b.Fatalf("%s is on %q, not a loop device", path, dev)
	}
	backing, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(dev), "loop/backing_file"))
	if err != nil {
		b.Fatal(err)
	}
	dropCache(b, strings.TrimSpace(string(backing)))
}
