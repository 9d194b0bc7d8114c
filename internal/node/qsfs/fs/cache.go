package fs

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// cache is the directory of blocks: dirty ones (not yet on the backend)
// stay until uploaded, clean ones until evicted, least recently used first,
// when the bytes held pass the bound.
type cache struct {
	dir string
	max int64

	mu   sync.Mutex // guards the fields below
	used int64
	// reserved is room promised to blocks about to be put (a writer's
	// next block, a fetched block): eviction keeps used+reserved under max.
	reserved int64
	seq      uint64
	ents     map[hash]*centry
	clean    list.List // of *centry, most recently used at the front
	// counters
	evictions, evictBytes int64
	peak                  int64 // the most bytes held at once
}

type centry struct {
	h     hash
	size  int64
	dirty bool
	seq   uint64        // order of sealing: older dirty blocks upload first
	up    chan struct{} // closed when the running upload ends; nil when none
	elem  *list.Element // in clean when clean
}

func newCache(dir string, max int64) (*cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("making cache directory: %w", err)
	}
	return &cache{dir: dir, max: max, ents: map[hash]*centry{}}, nil
}

func (c *cache) path(h hash) string { return filepath.Join(c.dir, h.String()) }

// adopt keeps the blocks already in the directory that keep is true for
// (they are on the backend: clean) and removes everything else.
func (c *cache) adopt(keep func(hash) bool) error {
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return fmt.Errorf("reading cache directory: %w", err)
	}
	for _, de := range des {
		var h hash
		info, ierr := de.Info()
		if ierr == nil && de.Type().IsRegular() && h.UnmarshalText([]byte(de.Name())) == nil && keep(h) && c.used+info.Size() <= c.max {
			e := &centry{h: h, size: info.Size()}
			e.elem = c.clean.PushBack(e)
			c.ents[h] = e
			c.used += e.size
			c.peak = c.used
			continue
		}
		if err := os.RemoveAll(filepath.Join(c.dir, de.Name())); err != nil {
			return fmt.Errorf("cleaning cache: %w", err)
		}
	}
	return nil
}

// put stores a block; dirty ones wait for upload. A block already held
// keeps its state (the same content is already there, maybe uploaded).
func (c *cache) put(h hash, data []byte, dirty bool) error {
	c.mu.Lock()
	if e := c.ents[h]; e != nil {
		c.touchLocked(e)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	tmp, err := os.CreateTemp(c.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("caching block %s: %w", h, err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), c.path(h))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("caching block %s: %w", h, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ents[h] != nil {
		return nil
	}
	c.seq++
	e := &centry{h: h, size: int64(len(data)), dirty: dirty, seq: c.seq}
	if !dirty {
		e.elem = c.clean.PushFront(e)
	}
	c.ents[h] = e
	c.used += e.size
	c.peak = max(c.peak, c.used)
	return nil
}

func (c *cache) touchLocked(e *centry) {
	if e.elem != nil {
		c.clean.MoveToFront(e.elem)
	}
}

// readAt reads from a cached block; ok is false when it is not cached.
func (c *cache) readAt(h hash, dest []byte, off int64) (n int, ok bool, err error) {
	c.mu.Lock()
	e := c.ents[h]
	if e != nil {
		c.touchLocked(e)
	}
	c.mu.Unlock()
	if e == nil {
		return 0, false, nil
	}
	f, err := os.Open(c.path(h))
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil // evicted meanwhile
	}
	if err != nil {
		return 0, false, fmt.Errorf("reading cached block %s: %w", h, err)
	}
	defer f.Close()
	n, err = f.ReadAt(dest, off)
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		return n, false, fmt.Errorf("reading cached block %s: %w", h, err)
	}
	return n, true, nil
}

// read returns a whole cached block, or ok false.
func (c *cache) read(h hash) ([]byte, bool, error) {
	c.mu.Lock()
	e := c.ents[h]
	c.mu.Unlock()
	if e == nil {
		return nil, false, nil
	}
	buf := make([]byte, e.size)
	n, ok, err := c.readAt(h, buf, 0)
	if !ok || err != nil {
		return nil, ok, err
	}
	return buf[:n], true, nil
}

// drop forgets a block that nothing references any more, unless an upload
// of it is running.
func (c *cache) drop(h hash) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.ents[h]; e != nil && e.up == nil {
		c.removeLocked(e)
	}
}

func (c *cache) removeLocked(e *centry) {
	if e.elem != nil {
		c.clean.Remove(e.elem)
		e.elem = nil
	}
	delete(c.ents, e.h)
	c.used -= e.size
	os.Remove(c.path(e.h))
}

// evictLocked removes clean blocks, coldest first, until the cache holds
// at most max-reserve bytes besides the room already reserved; it reports
// whether it got there.
func (c *cache) evictLocked(reserve int64) bool {
	for c.used+c.reserved+reserve > c.max {
		back := c.clean.Back()
		if back == nil {
			return false
		}
		e := back.Value.(*centry)
		c.removeLocked(e)
		c.evictions++
		c.evictBytes += e.size
	}
	return true
}

// oldestDirtyLocked returns the oldest dirty block no upload is running
// for, or else a running upload to wait for; both nil when nothing is
// dirty.
func (c *cache) oldestDirtyLocked() (*centry, chan struct{}) {
	var best *centry
	var wait chan struct{}
	for _, e := range c.ents {
		if !e.dirty {
			continue
		}
		if e.up != nil {
			wait = e.up
			continue
		}
		if best == nil || e.seq < best.seq {
			best = e
		}
	}
	return best, wait
}

// backlog returns the dirty blocks and their bytes.
func (c *cache) backlog() (n, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.ents {
		if e.dirty {
			n++
			bytes += e.size
		}
	}
	return n, bytes
}
