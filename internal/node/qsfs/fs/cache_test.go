package fs

import (
	"crypto/sha256"
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"
)

func testBlock(i int, size int) (hash, []byte) {
	data := randomBytes(size, byte(i))
	copy(data, strconv.Itoa(i))
	return sha256.Sum256(data), data
}

// dirBytes is what the cache directory holds on disk.
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, de := range des {
		if info, err := de.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// TestCleanPutMakesRoomFirst: a fetched (clean) block evicts colder clean
// blocks before it is written, so the cache directory never holds more
// than the bound (the cache volume's quota is only a little larger): one
// at a time, and many fetches at once (a read and its prefetches). The
// block read last stays; with only dirty blocks held, a clean one is not
// cached (errNoRoom) and nothing is written.
func TestCleanPutMakesRoomFirst(t *testing.T) {
	const bs = 1000
	c, err := newCache(t.TempDir(), 3*bs)
	if err != nil {
		t.Fatal(err)
	}
	var hs []hash
	for i := range 5 {
		h, data := testBlock(i, bs)
		hs = append(hs, h)
		if err := c.put(h, data, false); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if got := dirBytes(t, c.dir); got > c.max {
			t.Fatalf("after put %d the cache directory holds %d bytes, want at most %d", i, got, c.max)
		}
		// Block 0 is read after each put: the hottest, never evicted.
		if _, ok, _ := c.read(hs[0]); !ok {
			t.Fatalf("after put %d block 0, read after every put, was evicted", i)
		}
	}
	if c.evictions != 2 {
		t.Errorf("got %d evictions, want 2", c.evictions)
	}

	// Blocks being written hold their room: a put finding all the room
	// taken by those is not cached (errNoRoom), never over the bound.
	var wg sync.WaitGroup
	var mu sync.Mutex
	cached := 0
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, data := testBlock(100+i, bs)
			err := c.put(h, data, false)
			if err != nil && !errors.Is(err, errNoRoom) {
				t.Errorf("concurrent put %d: %v", i, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				cached++
			}
		}()
	}
	wg.Wait()
	if cached == 0 {
		t.Error("none of 16 concurrent puts was cached")
	}
	if got := dirBytes(t, c.dir); got > c.max || c.used > c.max {
		t.Errorf("after 16 concurrent puts: %d bytes on disk, %d counted, want at most %d", got, c.used, c.max)
	}

	d, err := newCache(t.TempDir(), 2*bs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		h, data := testBlock(200+i, bs)
		if err := d.put(h, data, true); err != nil {
			t.Fatal(err)
		}
	}
	h, data := testBlock(300, bs)
	if err := d.put(h, data, false); !errors.Is(err, errNoRoom) {
		t.Errorf("a clean put into a cache of dirty blocks: got %v, want errNoRoom", err)
	}
	if got := dirBytes(t, d.dir); got != 2*bs {
		t.Errorf("the cache of dirty blocks holds %d bytes on disk, want %d", got, 2*bs)
	}
}
