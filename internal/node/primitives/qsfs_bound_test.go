package primitives

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/testutil"
)

// The local data bound: the cache volume's bound, or
// max_zdb_data_dir_size (MiB) when lower; under four blocks is refused
// with the field named.
func TestQSFSLocalBound(t *testing.T) {
	m := NewQSFSManager(QSFSConfig{}, nil, testutil.Logger(t)) // 1 MiB blocks
	tests := []struct {
		name    string
		cache   gridtypes.Unit
		maxMiB  uint32
		want    int64
		wantErr string
	}{
		{"no max: the cache volume's bound", 1 << 30, 0, 1<<30 - 1<<27, ""},
		{"max lower than the cache", 1 << 30, 100, 100 << 20, ""},
		{"max higher than the cache", 1 << 30, 4096, 1<<30 - 1<<27, ""},
		{"max of four blocks", 1 << 30, 4, 4 << 20, ""},
		{"max under four blocks", 1 << 30, 3, 0, "config.max_zdb_data_dir_size: 3 MiB"},
		{"cache under four blocks", 5 << 20, 0, 0, "cache: 5242880 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &gridtypes.QuantumSafeFS{Cache: tt.cache, Config: gridtypes.QuantumSafeConfig{MaxZDBDataDirSize: tt.maxMiB}}
			got, err := m.localBound(q)
			if tt.wantErr != "" {
				testutil.WantError(t, err, tt.wantErr)
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

// A qsfs with max_zdb_data_dir_size of 1 MiB (16 blocks of 64 KiB) under
// an 8 MiB cache volume: a 6 MiB file streams through; the cache
// directory never holds more than 1 MiB (sampled throughout, and the file
// system's peak), the metrics show the bound; the file reads back
// identical from the local data and, after the workload is gone, from the
// backends alone. A bound under four blocks is refused, nothing mounted.
func TestQSFSMaxDataDirSize(t *testing.T) {
	st, c, m := qsfsSetup(t)
	conf := c.conf
	conf.MaxZDBDataDirSize = 1
	wl := qsWorkload("bounded", conf)
	res := provisionQSFS(t, m, wl)
	vol, err := st.VolumeLookup(qsfsVolume(wl.ID))
	if err != nil {
		t.Fatal(err)
	}
	cacheDir := filepath.Join(vol.Path, "cache")

	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, 6<<20)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	stop := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var peak int64
		for {
			peak = max(peak, dirBytesOf(cacheDir))
			select {
			case <-stop:
				sampled <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	p := filepath.Join(res.Path, "big")
	werr := os.WriteFile(p, data, 0o644)
	close(stop)
	dirPeak := <-sampled
	if werr != nil {
		t.Fatalf("writing 6 MiB through a 1 MiB bound: %v", werr)
	}
	m.mu.Lock()
	in := m.running[wl.ID]
	m.mu.Unlock()
	fst := in.fs.Stats()
	if fst.CacheMax != 1<<20 || fst.CachePeak > 1<<20 || dirPeak > 1<<20 {
		t.Errorf("got bound %d, peak %d accounted and %d in the directory; want a 1 MiB bound never passed", fst.CacheMax, fst.CachePeak, dirPeak)
	}
	if fst.Evictions == 0 || fst.BacklogBlocks != 0 {
		t.Errorf("got %d evictions, %d blocks not uploaded after close; want some evicted, none left", fst.Evictions, fst.BacklogBlocks)
	}
	_, body := scrape(t, res.MetricsEndpoint)
	if got := metricValue(t, body, "qsfs_cache_max_bytes"); got != 1<<20 {
		t.Errorf("metrics: qsfs_cache_max_bytes got %v, want %d", got, 1<<20)
	}
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading back through the mount: %v (identical: %v)", err, bytes.Equal(got, data))
	}
	if st := in.fs.Stats(); st.CachePeak > 1<<20 {
		t.Errorf("reading back: cache peak %d, want at most 1 MiB", st.CachePeak)
	}
	if err := m.Deprovision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
	res2 := provisionQSFS(t, m, qsWorkload("bounded-again", conf))
	if got, err := os.ReadFile(filepath.Join(res2.Path, "big")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading back from the backends alone: %v (identical: %v)", err, bytes.Equal(got, data))
	}

	small := NewQSFSManager(QSFSConfig{Root: t.TempDir(), Egress: loopbackPolicy(), BlockSize: 1 << 20}, st, testutil.Logger(t))
	bad := qsWorkload("too-small", conf)
	_, err = small.Provision(context.Background(), bad)
	testutil.WantError(t, err, "config.max_zdb_data_dir_size: 1 MiB")
	if _, lerr := st.VolumeLookup(qsfsVolume(bad.ID)); lerr == nil {
		t.Error("a refused qsfs left its cache volume")
	}
}

// dirBytesOf sums the sizes of the files in dir.
func dirBytesOf(dir string) int64 {
	des, _ := os.ReadDir(dir)
	var n int64
	for _, de := range des {
		if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}
