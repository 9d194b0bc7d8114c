package fs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// slowBackend is a backend whose uploads take a while, as over a slow
// network: writers outpace it and must wait for it.
type slowBackend struct {
	*dirBackend
	delay time.Duration
}

func (s slowBackend) Put(ctx context.Context, name string, data []byte) error {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.dirBackend.Put(ctx, name, data)
}

// dirBytes sums the sizes of the files in dir (temporary ones included).
func dirBytes(dir string) int64 {
	des, _ := os.ReadDir(dir)
	var n int64
	for _, de := range des {
		if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// TestCacheBoundHeld: two writers stream files four times the cache
// through a backend slower than them, each closing (a sync sealing the
// other's open block) half way, while a reader fetches a third file cold.
// The cache never holds more than its bound (the file system's peak, and
// the directory's bytes sampled throughout): clean blocks are evicted and
// writers wait for uploads. Every file then reads back whole from the
// backend alone.
func TestCacheBoundHeld(t *testing.T) {
	const bs, size = 256 << 10, 8 << 20
	b := newDirBackend(t)
	cold := randomBytes(size, 21)
	cfg := testConfig(t, 8*bs)
	cfg.BlockSize = bs
	f := mountFS(t, cfg, b)
	writeFile(t, filepath.Join(f.Dir(), "cold"), cold)
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}

	cfg = testConfig(t, 8*bs)
	cfg.BlockSize = bs
	g := mountFS(t, cfg, slowBackend{b, 3 * time.Millisecond})
	files := map[string][]byte{"a": randomBytes(size, 22), "b": randomBytes(size, 23)}
	stop := make(chan struct{})
	sampled := make(chan int64)
	go func() {
		var peak int64
		for {
			peak = max(peak, dirBytes(cfg.CacheDir))
			select {
			case <-stop:
				sampled <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for name, data := range files {
		wg.Go(func() {
			p := filepath.Join(g.Dir(), name)
			for _, half := range [][]byte{data[:size/2], data[size/2:]} {
				fh, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
				if err == nil {
					_, err = fh.Write(half)
					if cerr := fh.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		got, err := os.ReadFile(filepath.Join(g.Dir(), "cold"))
		if err == nil && !bytes.Equal(got, cold) {
			t.Error("the cold file read back different while the writers ran")
		}
		if err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(stop)
	dirPeak := <-sampled
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := g.Stats()
	if st.CachePeak > st.CacheMax || dirPeak > st.CacheMax {
		t.Errorf("cache peak: got %d bytes accounted, %d in the directory; want both at most the bound %d", st.CachePeak, dirPeak, st.CacheMax)
	}
	if st.CachePeak < st.CacheMax-bs {
		t.Errorf("cache peak: got %d bytes, want the cache filled to its bound %d (else this test shows nothing)", st.CachePeak, st.CacheMax)
	}
	if st.Evictions == 0 || st.Fetches < size/bs {
		t.Errorf("got %d evictions, %d fetches; want some, and at least %d", st.Evictions, st.Fetches, size/bs)
	}
	want := digest(t, g.Dir())
	if err := g.Unmount(); err != nil {
		t.Fatal(err)
	}
	cfg = testConfig(t, 8*bs)
	cfg.BlockSize = bs
	h := mountFS(t, cfg, b)
	compareDigests(t, digest(t, h.Dir()), want)
	for name, data := range files {
		if !bytes.Equal(readFile(t, filepath.Join(h.Dir(), name)), data) {
			t.Errorf("%s reads back different from the backend alone", name)
		}
	}
}
