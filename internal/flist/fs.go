package flist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	sysfuse "github.com/zos-go/zos/internal/sys/fuse"
)

// MountConfig tunes a mount.
type MountConfig struct {
	Store Store  // where blocks come from
	Cache *Cache // shared on-disk block cache; nil for none
	// MemCache bounds the plain blocks kept in memory (32 MiB when 0).
	MemCache int64
	// Prefetch is how many blocks ahead a sequential reader is served
	// (4 when 0, none when negative).
	Prefetch int
	// FetchTimeout bounds one block fetch (30 s when 0).
	FetchTimeout time.Duration
}

// FSStats count what a mounted flist did.
type FSStats struct {
	Fetched    int64 // blocks fetched from the store
	FetchBytes int64 // bytes fetched from the store
	CacheHits  int64 // blocks found in the disk cache
	Errors     int64 // blocks that could not be served
}

// FS is a read-only file system over a flist: file content is fetched block
// by block on first read, checked against its id and key, cached, and
// prefetched ahead of sequential readers. A block that cannot be fetched or
// fails its check is EIO for the read that needs it; everything else keeps
// being served.
type FS struct {
	meta  *Meta
	cfg   MountConfig
	log   *slog.Logger
	mem   *memCache
	ctx   context.Context
	stop  context.CancelFunc
	sem   chan struct{} // bounds prefetch goroutines
	wg    sync.WaitGroup
	stats struct{ fetched, fetchBytes, cacheHits, errors atomic.Int64 }

	mu       sync.Mutex // guards inflight
	inflight map[[HashSize]byte]*fetchCall
}

type fetchCall struct {
	done  chan struct{}
	plain []byte
	err   error
}

// NewFS makes the file system of m. Close stops its prefetching.
func NewFS(cfg MountConfig, m *Meta, log *slog.Logger) *FS {
	if cfg.MemCache == 0 {
		cfg.MemCache = 32 << 20
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 4
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	ctx, stop := context.WithCancel(context.Background())
	return &FS{
		meta: m, cfg: cfg, log: log, mem: newMemCache(cfg.MemCache), ctx: ctx, stop: stop,
		sem: make(chan struct{}, 4), inflight: map[[HashSize]byte]*fetchCall{},
	}
}

// Root is the root node, for mounting.
func (f *FS) Root() fs.InodeEmbedder { return &node{f: f, in: f.meta.Inodes[RootIno]} }

// Stats returns the counters.
func (f *FS) Stats() FSStats {
	return FSStats{f.stats.fetched.Load(), f.stats.fetchBytes.Load(), f.stats.cacheHits.Load(), f.stats.errors.Load()}
}

// Close stops prefetching and waits for it.
func (f *FS) Close() {
	f.stop()
	f.wg.Wait()
}

// block returns the plain bytes of a block: from memory, the disk cache or
// the store, one fetch per block at a time.
func (f *FS) block(ref BlockRef) ([]byte, error) {
	if p, ok := f.mem.get(ref.ID); ok {
		return p, nil
	}
	f.mu.Lock()
	if c, ok := f.inflight[ref.ID]; ok {
		f.mu.Unlock()
		<-c.done
		return c.plain, c.err
	}
	c := &fetchCall{done: make(chan struct{})}
	f.inflight[ref.ID] = c
	f.mu.Unlock()
	c.plain, c.err = f.fetch(ref)
	if c.err == nil {
		f.mem.put(ref.ID, c.plain)
	}
	f.mu.Lock()
	delete(f.inflight, ref.ID)
	f.mu.Unlock()
	close(c.done)
	return c.plain, c.err
}

func (f *FS) fetch(ref BlockRef) ([]byte, error) {
	if f.cfg.Cache != nil {
		if data, ok := f.cfg.Cache.Get(ref.ID); ok {
			plain, err := OpenBlock(ref, data)
			if err == nil {
				f.stats.cacheHits.Add(1)
				return plain, nil
			}
			f.log.Warn("cached_block_bad", "block", ref.String(), "err", err)
			f.cfg.Cache.Remove(ref.ID)
		}
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.FetchTimeout)
	defer cancel()
	data, err := f.cfg.Store.Get(ctx, ref.ID)
	if err != nil {
		return nil, fmt.Errorf("fetching block %s: %w", ref, err)
	}
	f.stats.fetched.Add(1)
	f.stats.fetchBytes.Add(int64(len(data)))
	plain, err := OpenBlock(ref, data)
	if err != nil {
		return nil, err
	}
	if f.cfg.Cache != nil {
		if err := f.cfg.Cache.Put(ref.ID, data); err != nil {
			f.log.Warn("cache_put", "block", ref.String(), "err", err)
		}
	}
	return plain, nil
}

// prefetch warms the blocks in the background, a few at a time; a full
// pipeline skips rather than waits.
func (f *FS) prefetch(refs []BlockRef) {
	for _, ref := range refs {
		if _, ok := f.mem.get(ref.ID); ok {
			continue
		}
		select {
		case f.sem <- struct{}{}:
		default:
			return
		}
		if f.ctx.Err() != nil {
			<-f.sem
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer func() { <-f.sem }()
			if _, err := f.block(ref); err != nil && f.ctx.Err() == nil {
				f.log.Debug("prefetch", "block", ref.String(), "err", err)
			}
		}()
	}
}

// readAt fills dest from the file at off.
func (f *FS) readAt(n *node, dest []byte, off int64) (int, error) {
	in := n.in
	if off < 0 {
		return 0, syscall.EINVAL
	}
	size := int64(in.Size)
	if off >= size {
		return 0, nil
	}
	end := min(off+int64(len(dest)), size)
	bs := int64(f.meta.BlockSize)
	done := 0
	// The content is the blocks end to end, cut at the size. A flist
	// written by rfs may hold fewer bytes than its size says (the file
	// shrank while rfs read it): the rest reads as zeros, as a hole would.
	// A block short of a full one anywhere but last is corrupt.
	for pos := off; pos < end; {
		bi := pos / bs
		var plain []byte
		if bi < int64(len(in.Blocks)) {
			var err error
			if plain, err = f.block(in.Blocks[bi]); err != nil {
				return done, err
			}
			if bi < int64(len(in.Blocks))-1 && int64(len(plain)) < bs {
				return done, fmt.Errorf("block %s: %w: %d bytes, want %d", in.Blocks[bi], ErrCorrupt, len(plain), bs)
			}
		}
		blockEnd := min((bi+1)*bs, end)
		lo, hi := pos-bi*bs, blockEnd-bi*bs
		seg := dest[done : done+int(hi-lo)]
		c := 0
		if have := int64(len(plain)); lo < have {
			c = copy(seg, plain[lo:min(hi, have)])
		}
		clear(seg[c:])
		done += len(seg)
		pos = blockEnd
	}
	// Sequential readers get the next blocks ahead of time.
	last := (end - 1) / bs
	n.mu.Lock()
	seq := off/bs <= n.next && n.next <= last+1
	n.next = last + 1
	n.mu.Unlock()
	if seq && f.cfg.Prefetch > 0 {
		hi := min(int(last)+1+f.cfg.Prefetch, len(in.Blocks))
		if int(last)+1 < hi {
			f.prefetch(in.Blocks[last+1 : hi])
		}
	}
	return done, nil
}

// node is one inode of the mounted tree.
type node struct {
	fs.Inode
	f  *FS
	in *Inode

	mu   sync.Mutex // guards next
	next int64      // block a sequential reader asks for next
}

var (
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeReader     = (*node)(nil)
)

func (f *FS) fillAttr(in *Inode, a *fuse.Attr) {
	a.Ino = in.Ino
	a.Mode = in.Mode
	a.Size = in.Size
	if in.Type() == ModeSymlink {
		a.Size = uint64(len(in.Target))
	}
	a.Blocks = (a.Size + 511) / 512
	a.Blksize = 4096
	a.Uid, a.Gid = in.UID, in.GID
	a.Rdev = uint32(in.Rdev)
	a.Nlink = 1
	if in.IsDir() {
		a.Nlink = 2
	}
	a.Mtime, a.Ctime, a.Atime = uint64(max(in.Mtime, 0)), uint64(max(in.Ctime, 0)), uint64(max(in.Mtime, 0))
}

// Getattr returns the inode's attributes.
func (n *node) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.f.fillAttr(n.in, &out.Attr)
	return 0
}

// Lookup finds a child by name.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	kids := n.f.meta.Children[n.in.Ino]
	i := sort.Search(len(kids), func(i int) bool { return n.f.meta.Inodes[kids[i]].Name >= name })
	if i == len(kids) || n.f.meta.Inodes[kids[i]].Name != name {
		return nil, syscall.ENOENT
	}
	child := n.f.meta.Inodes[kids[i]]
	n.f.fillAttr(child, &out.Attr)
	ch := n.NewInode(ctx, &node{f: n.f, in: child}, fs.StableAttr{Mode: child.Type(), Ino: child.Ino})
	return ch, 0
}

// Readdir lists a directory.
func (n *node) Readdir(_ context.Context) (fs.DirStream, syscall.Errno) {
	kids := n.f.meta.Children[n.in.Ino]
	out := make([]fuse.DirEntry, 0, len(kids))
	for _, c := range kids {
		in := n.f.meta.Inodes[c]
		out = append(out, fuse.DirEntry{Name: in.Name, Ino: in.Ino, Mode: in.Type()})
	}
	return fs.NewListDirStream(out), 0
}

// Readlink returns a symlink's target.
func (n *node) Readlink(_ context.Context) ([]byte, syscall.Errno) {
	if n.in.Type() != ModeSymlink {
		return nil, syscall.EINVAL
	}
	return []byte(n.in.Target), 0
}

// Open allows reading only; the kernel may keep the pages (the content
// never changes).
func (n *node) Open(_ context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR|syscall.O_TRUNC) != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

// Read serves file content; a block that cannot be fetched or checked is
// EIO.
func (n *node) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if n.in.Type() != ModeRegular {
		return nil, syscall.EISDIR
	}
	got, err := n.f.readAt(n, dest, off)
	if err != nil {
		n.f.stats.errors.Add(1)
		n.f.log.Warn("read_failed", "ino", n.in.Ino, "name", n.in.Name, "off", off, "err", err)
		if errors.Is(err, syscall.EINVAL) {
			return nil, syscall.EINVAL
		}
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:got]), 0
}

// Mount is a flist mounted read-only on a directory.
type Mount struct {
	FS  *FS
	Dir string
	srv *sysfuse.Server
}

// MountFS mounts m read-only on dir (which must exist).
func MountFS(dir string, m *Meta, cfg MountConfig, log *slog.Logger) (*Mount, error) {
	f := NewFS(cfg, m, log)
	srv, err := sysfuse.Mount(dir, f.Root(), sysfuse.Options{Name: "flist", ReadOnly: true, Timeout: time.Hour})
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Mount{FS: f, Dir: dir, srv: srv}, nil
}

// Wait returns when the mount goes away.
func (m *Mount) Wait() { m.srv.Wait() }

// Serve serves the mount until ctx ends or the mount goes away (unmounted
// from outside), then unmounts it and returns what Close said.
func (m *Mount) Serve(ctx context.Context) error {
	done := make(chan struct{})
	go func() { m.Wait(); close(done) }()
	select {
	case <-ctx.Done():
	case <-done:
	}
	err := m.Close()
	<-done
	return err
}

// Close unmounts (lazily when busy) and stops the file system.
func (m *Mount) Close() error {
	err := m.srv.Unmount()
	m.FS.Close()
	return err
}

// OverlayMounter makes overlay mounts (internal/sys/mount.Mounter).
type OverlayMounter interface {
	Overlay(lower, upper, work, target string) error
	Unmount(target string) error
}

// Writable is a writable view of a mounted flist: an overlay with the flist
// as lower layer and upper/work directories on a volume.
type Writable struct {
	Target string
	om     OverlayMounter
}

// MountWritable mounts an overlay of the read-only mount ro on target.
func MountWritable(ro *Mount, upper, work, target string, om OverlayMounter) (*Writable, error) {
	if err := om.Overlay(ro.Dir, upper, work, target); err != nil {
		return nil, err
	}
	return &Writable{Target: target, om: om}, nil
}

// Close unmounts the overlay (the read-only mount stays).
func (w *Writable) Close() error { return w.om.Unmount(w.Target) }
