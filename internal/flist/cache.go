package flist

import (
	"container/list"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Cache is a local, size-bounded, content-addressed cache of stored blocks
// (as fetched, still encrypted: every read checks them again). One Cache
// serves every mount of a process; the least recently used blocks go first.
type Cache struct {
	dir string
	max int64

	mu    sync.Mutex // guards size, lru, items
	size  int64
	lru   *list.List // front = most recent; values are *cacheEntry
	items map[[HashSize]byte]*list.Element
}

type cacheEntry struct {
	id   [HashSize]byte
	size int64
}

// NewCache opens (creating) a cache directory holding at most max bytes,
// indexing what is already there.
func NewCache(dir string, max int64) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating cache: %w", err)
	}
	c := &Cache{dir: dir, max: max, lru: list.New(), items: map[[HashSize]byte]*list.Element{}}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		id, perr := ParseID(d.Name())
		if perr != nil {
			_ = os.Remove(p) // a temporary file left by a crash
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		c.items[id] = c.lru.PushBack(&cacheEntry{id: id, size: info.Size()})
		c.size += info.Size()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("indexing cache: %w", err)
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

func (c *Cache) path(id [HashSize]byte) string {
	h := hex.EncodeToString(id[:])
	return filepath.Join(c.dir, h[:2], h)
}

// Get returns a cached block.
func (c *Cache) Get(id [HashSize]byte) ([]byte, bool) {
	c.mu.Lock()
	e, ok := c.items[id]
	if ok {
		c.lru.MoveToFront(e)
	}
	c.mu.Unlock()
	if !ok {
		return nil, false
	}
	b, err := os.ReadFile(c.path(id))
	if err != nil {
		c.Remove(id)
		return nil, false
	}
	return b, true
}

// Put stores a block, evicting old ones past the bound.
func (c *Cache) Put(id [HashSize]byte, data []byte) error {
	c.mu.Lock()
	_, ok := c.items[id]
	c.mu.Unlock()
	if ok || int64(len(data)) > c.max {
		return nil
	}
	if err := writeAtomic(c.path(id), data); err != nil {
		return fmt.Errorf("caching block: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[id]; !ok {
		c.items[id] = c.lru.PushFront(&cacheEntry{id: id, size: int64(len(data))})
		c.size += int64(len(data))
	}
	c.evictLocked()
	return nil
}

// Remove drops a block (one that failed its check).
func (c *Cache) Remove(id [HashSize]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[id]; ok {
		c.dropLocked(e)
	}
}

// Size returns the bytes cached.
func (c *Cache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

func (c *Cache) evictLocked() {
	for c.size > c.max && c.lru.Len() > 0 {
		c.dropLocked(c.lru.Back())
	}
}

func (c *Cache) dropLocked(e *list.Element) {
	ce := e.Value.(*cacheEntry)
	c.lru.Remove(e)
	delete(c.items, ce.id)
	c.size -= ce.size
	if err := os.Remove(c.path(ce.id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return
	}
}

// memCache keeps recently used plain blocks of one mount in memory.
type memCache struct {
	max int64

	mu    sync.Mutex // guards size, lru, items
	size  int64
	lru   *list.List // values are *memEntry
	items map[[HashSize]byte]*list.Element
}

type memEntry struct {
	id    [HashSize]byte
	plain []byte
}

func newMemCache(max int64) *memCache {
	return &memCache{max: max, lru: list.New(), items: map[[HashSize]byte]*list.Element{}}
}

func (m *memCache) get(id [HashSize]byte) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.items[id]
	if !ok {
		return nil, false
	}
	m.lru.MoveToFront(e)
	return e.Value.(*memEntry).plain, true
}

func (m *memCache) put(id [HashSize]byte, plain []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.items[id]; ok || int64(len(plain)) > m.max {
		return
	}
	m.items[id] = m.lru.PushFront(&memEntry{id: id, plain: plain})
	m.size += int64(len(plain))
	for m.size > m.max {
		e := m.lru.Back()
		me := e.Value.(*memEntry)
		m.lru.Remove(e)
		delete(m.items, me.id)
		m.size -= int64(len(me.plain))
	}
}
