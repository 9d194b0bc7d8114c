package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sysfuse "github.com/zos-go/zos/internal/sys/fuse"
)

// Stats count what the file system did, for metrics.
type Stats struct {
	BacklogBlocks int64 // sealed blocks not yet on the backend
	BacklogBytes  int64
	OpenBlocks    int64 // blocks being written, in memory
	CacheBytes    int64 // bytes of blocks in the cache directory
	CacheMax      int64
	CachePeak     int64 // the most bytes the cache directory held at once
	Evictions     int64 // clean blocks evicted from the cache
	EvictBytes    int64
	Fetches       int64 // blocks fetched back from the backend
	FetchBytes    int64
	Uploads       int64 // blocks uploaded to the backend
	UploadBytes   int64
	UploadErrors  int64
	Checkpoints   int64 // metadata checkpoints written
	Generation    uint64
}

// FS is a mounted qsfs file system.
type FS struct {
	cfg     Config
	backend Backend
	log     *slog.Logger
	cache   *cache
	bs      int64
	dir     string
	srv     *sysfuse.Server
	closed  atomic.Bool // Abort ran

	ctx  context.Context // ends when the file system stops
	stop context.CancelFunc
	wg   sync.WaitGroup // background uploaders and checkpointer
	kick chan struct{}  // wakes the uploaders

	// gcMu orders uploads (read) against deletions of blocks (write), so
	// a block sealed again while its old copy is being deleted is
	// uploaded after the delete.
	gcMu sync.RWMutex
	// syncMu makes checkpoints one at a time, in generation order.
	syncMu sync.Mutex

	mu   sync.Mutex // guards the fields below
	t    *tree
	refs map[hash]int // how many block slots name each block
	// garbage holds the blocks nothing names, with the change count when
	// they became so: a sync whose snapshot is at or past it may delete
	// them from the backend.
	garbage map[hash]uint64
	pinned  map[hash]struct{} // named by the record being written: kept even when unnamed
	// dirtyInos are the inodes changed since the last record; the next
	// sync writes them.
	dirtyInos map[uint64]struct{}
	fullGen   uint64 // generation of the last full checkpoint (0: none yet)
	fullBytes int64  // its size
	jrnlBytes int64  // bytes of journal records since it
	open      map[bkey]*oblock
	tick      uint64
	changes   uint64 // bumped by every change; a checkpoint clears dirt it covered
	synced    uint64 // changes covered by the last checkpoint

	fmu      sync.Mutex             // guards fetching, stopped
	fetching map[hash]chan struct{} // fetches running, closed when done
	stopped  bool                   // no more prefetches start
	pwg      sync.WaitGroup         // prefetches
	psem     chan struct{}          // bounds prefetches

	stats struct {
		fetches, fetchBytes, uploads, uploadBytes, uploadErrors, checkpoints atomic.Int64
	}
}

type bkey struct {
	ino uint64
	idx int64
}

// oblock is a block being written: its whole content in memory until it is
// sealed into the cache.
type oblock struct {
	data []byte
	tick uint64
}

// Mount loads the tree from the backend (a new one when the backend holds
// none), keeps what the cache directory holds of it, and serves it on
// mountpoint.
func Mount(cfg Config, backend Backend, mountpoint string, log *slog.Logger) (*FS, error) {
	f, err := New(cfg, backend, log)
	if err != nil {
		return nil, err
	}
	srv, err := sysfuse.Mount(mountpoint, f.Root(), sysfuse.Options{
		Name: "qsfs", Type: "qsfs", Timeout: time.Second, MaxWrite: 1 << 20,
	})
	if err != nil {
		f.stopWorkers()
		return nil, err
	}
	f.srv, f.dir = srv, mountpoint
	return f, nil
}

// New loads the file system without mounting it (Mount serves it).
func New(cfg Config, backend Backend, log *slog.Logger) (*FS, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("qsfs config: %w", err)
	}
	log = log.With("component", "qsfs-fs")
	ctx, stop := context.WithCancel(context.Background())
	f := &FS{
		cfg: cfg, backend: backend, log: log, ctx: ctx, stop: stop, kick: make(chan struct{}, 1),
		refs: map[hash]int{}, garbage: map[hash]uint64{}, open: map[bkey]*oblock{},
		dirtyInos: map[uint64]struct{}{}, fetching: map[hash]chan struct{}{}, psem: make(chan struct{}, prefetchAhead),
	}
	t, full, err := f.load()
	if err != nil {
		stop()
		return nil, err
	}
	f.t, f.bs, f.fullGen = t, int64(t.BlockSize), full
	for _, in := range t.Inodes {
		for _, h := range in.Blocks {
			f.refs[h]++
		}
	}
	if f.cache, err = newCache(cfg.CacheDir, cfg.CacheSize); err != nil {
		stop()
		return nil, err
	}
	// Blocks the loaded tree names are on the backend: cached ones stay,
	// clean; anything else is left from a crash and goes.
	if err := f.cache.adopt(func(h hash) bool { return f.refs[h] > 0 }); err != nil {
		stop()
		return nil, err
	}
	for range cfg.Uploaders {
		f.wg.Add(1)
		go f.uploader()
	}
	f.wg.Add(1)
	go f.checkpointer()
	log.Info("qsfs_loaded", "generation", t.Gen, "inodes", len(t.Inodes), "blocks", len(f.refs))
	return f, nil
}

// Dir is where the file system is mounted.
func (f *FS) Dir() string { return f.dir }

// Stats returns the counters.
func (f *FS) Stats() Stats {
	n, b := f.cache.backlog()
	f.cache.mu.Lock()
	used, peak, ev, evb := f.cache.used, f.cache.peak, f.cache.evictions, f.cache.evictBytes
	f.cache.mu.Unlock()
	f.mu.Lock()
	open, gen := int64(len(f.open)), f.t.Gen
	f.mu.Unlock()
	return Stats{
		BacklogBlocks: n, BacklogBytes: b, OpenBlocks: open, CacheBytes: used, CacheMax: f.cache.max, CachePeak: peak,
		Evictions: ev, EvictBytes: evb,
		Fetches: f.stats.fetches.Load(), FetchBytes: f.stats.fetchBytes.Load(),
		Uploads: f.stats.uploads.Load(), UploadBytes: f.stats.uploadBytes.Load(),
		UploadErrors: f.stats.uploadErrors.Load(), Checkpoints: f.stats.checkpoints.Load(), Generation: gen,
	}
}

// Unmount flushes everything to the backend, then unmounts. When the flush
// fails the file system stays mounted (nothing is lost) and the error says
// why; Abort unmounts regardless.
func (f *FS) Unmount() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*f.cfg.OpTimeout)
	defer cancel()
	if err := f.Sync(ctx); err != nil {
		return fmt.Errorf("flushing before unmount: %w", err)
	}
	return f.Abort()
}

// Abort unmounts without flushing: what was not synced is lost, as in a
// crash, and the backend keeps its last checkpoint.
func (f *FS) Abort() error {
	if f.closed.Swap(true) {
		return nil
	}
	var err error
	if f.srv != nil {
		err = f.srv.Unmount()
	}
	f.stopWorkers()
	return err
}

func (f *FS) stopWorkers() {
	f.stop()
	f.wg.Wait()
	f.fmu.Lock()
	f.stopped = true
	f.fmu.Unlock()
	f.pwg.Wait()
}

// upload puts a dirty block on the backend; a block already uploaded (or
// dropped) is done. An upload already running is waited for, and retried
// here when it failed.
func (f *FS) upload(ctx context.Context, h hash) error {
	c := f.cache
	for {
		c.mu.Lock()
		e := c.ents[h]
		if e == nil || !e.dirty {
			c.mu.Unlock()
			return nil
		}
		if ch := e.up; ch != nil {
			c.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ch := make(chan struct{})
		e.up = ch
		c.mu.Unlock()
		err := f.put(ctx, h)
		c.mu.Lock()
		e.up = nil
		close(ch)
		if err == nil && e.dirty {
			e.dirty = false
			if c.ents[h] == e {
				e.elem = c.clean.PushFront(e)
			}
		}
		c.mu.Unlock()
		if err != nil {
			f.stats.uploadErrors.Add(1)
		}
		return err
	}
}

func (f *FS) put(ctx context.Context, h hash) error {
	data, ok, err := f.cache.read(h)
	if err != nil {
		return err
	}
	if !ok {
		return nil // dropped: nothing references it
	}
	f.gcMu.RLock()
	defer f.gcMu.RUnlock()
	octx, cancel := context.WithTimeout(ctx, f.cfg.OpTimeout)
	defer cancel()
	if err := f.backend.Put(octx, blockName(h), data); err != nil {
		return fmt.Errorf("uploading block %s: %w", h, err)
	}
	f.stats.uploads.Add(1)
	f.stats.uploadBytes.Add(int64(len(data)))
	return nil
}

// makeRoom brings the cache to reserve bytes under its bound (besides the
// room reserved by others): it evicts clean blocks (already on the
// backend), and when only dirty ones are left it uploads the oldest itself
// (a writer faster than the backend waits for it here). With reserve > 0
// the room is reserved for the caller until it calls release: blocks
// written or fetched in it keep the cache within its bound however many
// writers and readers run. When the rest is reserved by others, a writer
// (wait) waits for them; a fetch is told errNoRoom and serves its block
// uncached (writers may be waiting for that fetch while holding room).
func (f *FS) makeRoom(ctx context.Context, reserve int64, wait bool) (release func(), err error) {
	c := f.cache
	for {
		c.mu.Lock()
		if c.evictLocked(reserve) || c.used+c.reserved == 0 {
			c.reserved += reserve
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				c.reserved -= reserve
				c.mu.Unlock()
			}, nil
		}
		e, running := c.oldestDirtyLocked()
		c.mu.Unlock()
		switch {
		case e != nil:
			if err := f.upload(ctx, e.h); err != nil {
				return nil, err
			}
		case running != nil:
			select {
			case <-running:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case !wait:
			return nil, errNoRoom
		default:
			// Nothing evictable nor dirty: the rest is reserved by
			// others; wait for them to put their blocks.
			select {
			case <-time.After(time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

// errNoRoom is a fetched block the cache has no room for now.
var errNoRoom = errors.New("the cache is full of blocks being written")

// blockData returns a whole block from the cache or, fetched and checked,
// from the backend (then cached, clean, when there is room).
func (f *FS) blockData(ctx context.Context, h hash) ([]byte, error) {
	if data, ok, err := f.cache.read(h); err != nil || ok {
		return data, err
	}
	return f.fetchOnce(ctx, h)
}

func (f *FS) fetch(ctx context.Context, h hash) ([]byte, error) {
	octx, cancel := context.WithTimeout(ctx, f.cfg.OpTimeout)
	defer cancel()
	data, err := f.backend.Get(octx, blockName(h))
	if err != nil {
		return nil, fmt.Errorf("fetching block %s: %w", h, err)
	}
	if sha256.Sum256(data) != h {
		return nil, fmt.Errorf("fetching block %s: content does not match its hash", h)
	}
	f.stats.fetches.Add(1)
	f.stats.fetchBytes.Add(int64(len(data)))
	return data, nil
}

// uploader uploads the backlog in the background, oldest first, backing
// off while the backend fails.
func (f *FS) uploader() {
	defer f.wg.Done()
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			select {
			case <-f.ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		f.cache.mu.Lock()
		e, _ := f.cache.oldestDirtyLocked()
		f.cache.mu.Unlock()
		if e == nil {
			select {
			case <-f.ctx.Done():
				return
			case <-f.kick:
				continue
			}
		}
		if err := f.upload(f.ctx, e.h); err != nil {
			if f.ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			f.log.Warn("upload_failed", "block", e.h.String(), "err", err, "retry_in", backoff)
			continue
		}
		backoff = 0
		f.cache.mu.Lock()
		f.cache.evictLocked(0)
		f.cache.mu.Unlock()
	}
}

// checkpointer checkpoints changed metadata every interval.
func (f *FS) checkpointer() {
	defer f.wg.Done()
	tk := time.NewTicker(f.cfg.CheckpointInterval)
	defer tk.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-tk.C:
		}
		f.mu.Lock()
		dirty := f.changes != f.synced || len(f.open) > 0
		f.mu.Unlock()
		if !dirty {
			continue
		}
		if err := f.Sync(f.ctx); err != nil && f.ctx.Err() == nil {
			f.log.Warn("checkpoint_failed", "err", err)
		}
	}
}

func (f *FS) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *FS) refLocked(h hash) { f.refs[h]++ }

// touchLocked records that inodes changed: the next sync writes them.
func (f *FS) touchLocked(inos ...uint64) {
	f.changes++
	for _, ino := range inos {
		f.dirtyInos[ino] = struct{}{}
	}
}

func (f *FS) unrefLocked(h hash) {
	f.refs[h]--
	if f.refs[h] > 0 {
		return
	}
	delete(f.refs, h)
	f.changes++
	f.garbage[h] = f.changes
	if _, ok := f.pinned[h]; ok {
		return
	}
	f.cache.mu.Lock()
	if e := f.cache.ents[h]; e != nil && e.dirty && e.up == nil {
		f.cache.removeLocked(e) // never uploaded: nothing to delete remotely
	}
	f.cache.mu.Unlock()
}

// sealLocked moves an open block into the cache as a dirty block (an
// all-zero one becomes a hole). On error the block stays open.
func (f *FS) sealLocked(k bkey) error {
	ob := f.open[k]
	if ob == nil {
		return nil
	}
	in := f.t.Inodes[k.ino]
	if in == nil {
		delete(f.open, k)
		return nil
	}
	start := k.idx * f.bs
	if int64(in.Size) <= start {
		delete(f.open, k)
		return nil
	}
	data := ob.data[:min(f.bs, int64(in.Size)-start)]
	old, had := in.Blocks[k.idx]
	if isZero(data) {
		if had {
			delete(in.Blocks, k.idx)
			f.unrefLocked(old)
			f.touchLocked(k.ino)
		}
		delete(f.open, k)
		return nil
	}
	h := hash(sha256.Sum256(data))
	if had && old == h {
		delete(f.open, k)
		return nil
	}
	if err := f.cache.put(h, data, true); err != nil {
		return err
	}
	if in.Blocks == nil {
		in.Blocks = map[int64]hash{}
	}
	in.Blocks[k.idx] = h
	f.touchLocked(k.ino)
	f.refLocked(h)
	if had {
		f.unrefLocked(old)
	}
	delete(f.open, k)
	f.wake()
	return nil
}

func (f *FS) sealAllLocked() error {
	keys := make([]bkey, 0, len(f.open))
	for k := range f.open {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return f.open[keys[i]].tick < f.open[keys[j]].tick })
	for _, k := range keys {
		if err := f.sealLocked(k); err != nil {
			return err
		}
	}
	return nil
}

// sealExcessLocked seals the least recently written open blocks beyond the
// bound.
func (f *FS) sealExcessLocked() error {
	for len(f.open) > f.cfg.OpenBlocks {
		var oldest bkey
		var ot uint64 = ^uint64(0)
		for k, ob := range f.open {
			if ob.tick < ot {
				oldest, ot = k, ob.tick
			}
		}
		if err := f.sealLocked(oldest); err != nil {
			return err
		}
	}
	return nil
}

var zeroBlock = make([]byte, 64<<10)

func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// lockOpen returns the open block k with f.mu held, opening it (with the
// block's current content, fetched when needed) if it is not.
func (f *FS) lockOpen(ctx context.Context, k bkey) (*oblock, error) {
	f.mu.Lock()
	for {
		if ob := f.open[k]; ob != nil {
			return ob, nil
		}
		in := f.t.Inodes[k.ino]
		if in == nil {
			f.mu.Unlock()
			return nil, syscall.ENOENT
		}
		h, ok := in.Blocks[k.idx]
		if !ok {
			ob := &oblock{data: make([]byte, f.bs)}
			f.open[k] = ob
			return ob, nil
		}
		f.mu.Unlock()
		data, err := f.blockData(ctx, h)
		if err != nil {
			return nil, err
		}
		f.mu.Lock()
		if f.open[k] == nil && in.Blocks[k.idx] == h {
			ob := &oblock{data: make([]byte, f.bs)}
			copy(ob.data, data)
			f.open[k] = ob
			return ob, nil
		}
	}
}

// write writes data at off into file ino.
func (f *FS) write(ctx context.Context, ino uint64, data []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	done := 0
	for done < len(data) {
		// Room first, for the block this write may seal: with the cache
		// full of dirty blocks and the backend refusing them, the write
		// is refused rather than taken over the bound.
		release, err := f.makeRoom(ctx, f.bs, true)
		if err != nil {
			return done, err
		}
		pos := off + int64(done)
		k := bkey{ino, pos / f.bs}
		bo := pos % f.bs
		n := int(min(int64(len(data)-done), f.bs-bo))
		ob, err := f.lockOpen(ctx, k)
		if err != nil {
			release()
			return done, err
		}
		copy(ob.data[bo:], data[done:done+n])
		f.tick++
		ob.tick = f.tick
		in := f.t.Inodes[ino]
		in.Size = max(in.Size, uint64(pos)+uint64(n))
		now := time.Now().UnixNano()
		in.Mtime, in.Ctime = now, now
		f.touchLocked(ino)
		// A block written to its end is sealed now, so a streaming
		// writer uploads as it goes.
		if bo+int64(n) == f.bs {
			err = f.sealLocked(k)
		}
		if err == nil {
			err = f.sealExcessLocked()
		}
		f.mu.Unlock()
		release()
		if err != nil {
			return done, err
		}
		done += n
	}
	return done, nil
}

// read fills dest from file ino at off.
func (f *FS) read(ctx context.Context, ino uint64, dest []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	f.mu.Lock()
	in := f.t.Inodes[ino]
	if in == nil {
		f.mu.Unlock()
		return 0, syscall.ENOENT
	}
	size := int64(in.Size)
	in.Atime = time.Now().UnixNano()
	f.mu.Unlock()
	if off >= size {
		return 0, nil
	}
	end := min(off+int64(len(dest)), size)
	done := 0
	for pos := off; pos < end; {
		idx := pos / f.bs
		lo := pos - idx*f.bs
		hi := min(end-idx*f.bs, f.bs)
		seg := dest[done : done+int(hi-lo)]
		f.mu.Lock()
		var h hash
		var has bool
		if ob := f.open[bkey{ino, idx}]; ob != nil {
			copy(seg, ob.data[lo:hi])
		} else {
			h, has = in.Blocks[idx]
			if !has {
				clear(seg)
			}
		}
		f.mu.Unlock()
		if has {
			fetched, err := f.readBlock(ctx, h, seg, lo)
			if err != nil {
				return done, err
			}
			if fetched || lo == 0 {
				// a reader entering a block gets the next ones
				// fetched ahead when they are not cached
				f.prefetch(ino, idx+1)
			}
		}
		done += len(seg)
		pos += int64(len(seg))
	}
	return done, nil
}

// readBlock reads part of a sealed block; bytes past its end are zeros.
func (f *FS) readBlock(ctx context.Context, h hash, seg []byte, lo int64) (fetched bool, err error) {
	n, ok, err := f.cache.readAt(h, seg, lo)
	if err != nil {
		return false, err
	}
	if !ok {
		fetched = true
		data, err := f.blockData(ctx, h)
		if err != nil {
			return fetched, err
		}
		n = 0
		if lo < int64(len(data)) {
			n = copy(seg, data[lo:])
		}
	}
	clear(seg[n:])
	return fetched, nil
}

// truncate sets the size of file ino; bytes past a shrunk size read as
// zeros when the file grows again.
func (f *FS) truncate(ctx context.Context, ino uint64, size uint64) error {
	f.mu.Lock()
	in := f.t.Inodes[ino]
	if in == nil {
		f.mu.Unlock()
		return syscall.ENOENT
	}
	if size < in.Size && size%uint64(f.bs) != 0 {
		// The block holding the new end is opened so its tail can be
		// cleared; lockOpen comes back with f.mu held.
		f.mu.Unlock()
		if _, err := f.lockOpen(ctx, bkey{ino, int64(size / uint64(f.bs))}); err != nil {
			return err
		}
	}
	defer f.mu.Unlock()
	if size < in.Size {
		for idx, h := range in.Blocks {
			if uint64(idx)*uint64(f.bs) >= size {
				delete(in.Blocks, idx)
				f.unrefLocked(h)
			}
		}
		for k := range f.open {
			if k.ino == ino && uint64(k.idx)*uint64(f.bs) >= size {
				delete(f.open, k)
			}
		}
		if ob := f.open[bkey{ino, int64(size / uint64(f.bs))}]; ob != nil {
			clear(ob.data[size%uint64(f.bs):])
		}
	}
	in.Size = size
	f.touchLocked(ino)
	return nil
}

// freeLocked forgets an inode nothing links nor holds open.
func (f *FS) freeLocked(in *inode) {
	if in.Nlink > 0 || in.open > 0 || in.Ino == rootIno {
		return
	}
	for _, h := range in.Blocks {
		f.unrefLocked(h)
	}
	for k := range f.open {
		if k.ino == in.Ino {
			delete(f.open, k)
		}
	}
	delete(f.t.Inodes, in.Ino)
	f.touchLocked(in.Ino)
}

// errno maps an error to what the kernel is told: backend and cache
// failures are EIO; a request the kernel interrupted (the caller got a
// signal: go-fuse cancels its context) is EINTR, which callers retry,
// where EIO would tell them their fsync failed.
func errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if e, ok := err.(syscall.Errno); ok {
		return e
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return syscall.EIO
}
