package fs

import (
	"context"
	"sort"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is one inode of the mounted tree; its state lives in FS.t under
// FS.mu.
type node struct {
	gofs.Inode
	f   *FS
	ino uint64
}

// handle is an open file; dirty says it wrote, so closing it syncs.
type handle struct {
	dirty atomic.Bool
}

var (
	_ gofs.NodeGetattrer  = (*node)(nil)
	_ gofs.NodeSetattrer  = (*node)(nil)
	_ gofs.NodeLookuper   = (*node)(nil)
	_ gofs.NodeReaddirer  = (*node)(nil)
	_ gofs.NodeMkdirer    = (*node)(nil)
	_ gofs.NodeMknoder    = (*node)(nil)
	_ gofs.NodeCreater    = (*node)(nil)
	_ gofs.NodeOpener     = (*node)(nil)
	_ gofs.NodeReader     = (*node)(nil)
	_ gofs.NodeWriter     = (*node)(nil)
	_ gofs.NodeFlusher    = (*node)(nil)
	_ gofs.NodeFsyncer    = (*node)(nil)
	_ gofs.NodeReleaser   = (*node)(nil)
	_ gofs.NodeUnlinker   = (*node)(nil)
	_ gofs.NodeRmdirer    = (*node)(nil)
	_ gofs.NodeRenamer    = (*node)(nil)
	_ gofs.NodeSymlinker  = (*node)(nil)
	_ gofs.NodeReadlinker = (*node)(nil)
	_ gofs.NodeLinker     = (*node)(nil)
	_ gofs.NodeStatfser   = (*node)(nil)
)

// Root is the root node, for mounting.
func (f *FS) Root() gofs.InodeEmbedder { return &node{f: f, ino: rootIno} }

func fillAttr(in *inode, bs int64, a *fuse.Attr) {
	a.Ino = in.Ino
	a.Mode = in.Mode
	a.Size = in.Size
	if in.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		a.Size = uint64(len(in.Target))
	}
	a.Blocks = uint64(len(in.Blocks)) * uint64(bs) / 512
	a.Blksize = uint32(bs)
	a.Uid, a.Gid = in.UID, in.GID
	a.Rdev = in.Rdev
	a.Nlink = in.Nlink
	a.Atime, a.Atimensec = uint64(in.Atime/1e9), uint32(in.Atime%1e9)
	a.Mtime, a.Mtimensec = uint64(in.Mtime/1e9), uint32(in.Mtime%1e9)
	a.Ctime, a.Ctimensec = uint64(in.Ctime/1e9), uint32(in.Ctime%1e9)
}

// Getattr returns the inode's attributes.
func (n *node) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in := n.f.t.Inodes[n.ino]
	if in == nil {
		return syscall.ENOENT
	}
	fillAttr(in, n.f.bs, &out.Attr)
	return 0
}

// Setattr changes mode, owner, size and times.
func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, sa *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := sa.GetSize(); ok {
		if h, ok := fh.(*handle); ok {
			h.dirty.Store(true) // an ftruncate is a write: close syncs it
		}
		if err := n.f.truncate(ctx, n.ino, size); err != nil {
			n.f.log.Warn("truncate_failed", "ino", n.ino, "err", err)
			return errno(err)
		}
	}
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	in := f.t.Inodes[n.ino]
	if in == nil {
		return syscall.ENOENT
	}
	now := time.Now().UnixNano()
	if m, ok := sa.GetMode(); ok {
		in.Mode = in.Mode&syscall.S_IFMT | m&0o7777
	}
	if u, ok := sa.GetUID(); ok {
		in.UID = u
	}
	if g, ok := sa.GetGID(); ok {
		in.GID = g
	}
	if t, ok := sa.GetATime(); ok {
		in.Atime = t.UnixNano()
	}
	if t, ok := sa.GetMTime(); ok {
		in.Mtime = t.UnixNano()
	}
	if _, ok := sa.GetSize(); ok {
		in.Mtime = now
	}
	in.Ctime = now
	f.touchLocked(n.ino)
	fillAttr(in, f.bs, &out.Attr)
	return 0
}

// child returns the inode named name in directory n, with f.mu held.
func (n *node) childLocked(name string) (*inode, syscall.Errno) {
	dir := n.f.t.Inodes[n.ino]
	if dir == nil || !dir.isDir() {
		return nil, syscall.ENOTDIR
	}
	c, ok := dir.Entries[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	return n.f.t.Inodes[c], 0
}

func (n *node) newInode(ctx context.Context, in *inode, out *fuse.EntryOut) *gofs.Inode {
	fillAttr(in, n.f.bs, &out.Attr)
	return n.NewInode(ctx, &node{f: n.f, ino: in.Ino}, gofs.StableAttr{Mode: in.Mode & syscall.S_IFMT, Ino: in.Ino})
}

// Lookup finds a child by name.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in, e := n.childLocked(name)
	if e != 0 {
		return nil, e
	}
	return n.newInode(ctx, in, out), 0
}

// Readdir lists a directory, sorted by name.
func (n *node) Readdir(_ context.Context) (gofs.DirStream, syscall.Errno) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	dir := n.f.t.Inodes[n.ino]
	if dir == nil || !dir.isDir() {
		return nil, syscall.ENOTDIR
	}
	out := make([]fuse.DirEntry, 0, len(dir.Entries))
	for name, c := range dir.Entries {
		out = append(out, fuse.DirEntry{Name: name, Ino: c, Mode: n.f.t.Inodes[c].Mode & syscall.S_IFMT})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return gofs.NewListDirStream(out), 0
}

// addLocked makes a new inode named name in directory n.
func (n *node) addLocked(ctx context.Context, name string, mode uint32) (*inode, syscall.Errno) {
	f := n.f
	dir := f.t.Inodes[n.ino]
	if dir == nil || !dir.isDir() {
		return nil, syscall.ENOTDIR
	}
	if _, ok := dir.Entries[name]; ok {
		return nil, syscall.EEXIST
	}
	if len(name) > 255 {
		return nil, syscall.ENAMETOOLONG
	}
	now := time.Now().UnixNano()
	in := &inode{Ino: f.t.NextIno, Mode: mode, Nlink: 1, Atime: now, Mtime: now, Ctime: now}
	if c, ok := fuse.FromContext(ctx); ok {
		in.UID, in.GID = c.Uid, c.Gid
	}
	if dir.Mode&syscall.S_ISGID != 0 {
		in.GID = dir.GID
		if mode&syscall.S_IFMT == syscall.S_IFDIR {
			in.Mode |= syscall.S_ISGID
		}
	}
	if in.isDir() {
		in.Nlink, in.Parent, in.Entries = 2, dir.Ino, map[string]uint64{}
		dir.Nlink++
	}
	f.t.NextIno++
	f.t.Inodes[in.Ino] = in
	dir.Entries[name] = in.Ino
	dir.Mtime, dir.Ctime = now, now
	f.touchLocked(dir.Ino, in.Ino)
	return in, 0
}

// Mkdir makes a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in, e := n.addLocked(ctx, name, syscall.S_IFDIR|mode&0o7777)
	if e != 0 {
		return nil, e
	}
	return n.newInode(ctx, in, out), 0
}

// Mknod makes a regular file, fifo, socket or device node.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK, syscall.S_IFCHR, syscall.S_IFBLK:
	default:
		return nil, syscall.EINVAL
	}
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in, e := n.addLocked(ctx, name, mode)
	if e != 0 {
		return nil, e
	}
	in.Rdev = dev
	return n.newInode(ctx, in, out), 0
}

// Create makes and opens a regular file.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in, e := n.addLocked(ctx, name, syscall.S_IFREG|mode&0o7777)
	if e != 0 {
		return nil, nil, 0, e
	}
	in.open++
	return n.newInode(ctx, in, out), &handle{}, 0, 0
}

// Symlink makes a symbolic link.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in, e := n.addLocked(ctx, name, syscall.S_IFLNK|0o777)
	if e != 0 {
		return nil, e
	}
	in.Target = target
	return n.newInode(ctx, in, out), 0
}

// Readlink returns a symlink's target.
func (n *node) Readlink(_ context.Context) ([]byte, syscall.Errno) {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in := n.f.t.Inodes[n.ino]
	if in == nil || in.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	return []byte(in.Target), 0
}

// Link makes a hard link to target in n.
func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	tn, ok := target.(*node)
	if !ok || tn.f != n.f {
		return nil, syscall.EXDEV
	}
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := f.t.Inodes[n.ino]
	in := f.t.Inodes[tn.ino]
	switch {
	case dir == nil || !dir.isDir():
		return nil, syscall.ENOTDIR
	case in == nil || in.Nlink == 0:
		return nil, syscall.ENOENT
	case in.isDir():
		return nil, syscall.EPERM
	}
	if _, ok := dir.Entries[name]; ok {
		return nil, syscall.EEXIST
	}
	now := time.Now().UnixNano()
	dir.Entries[name] = in.Ino
	dir.Mtime, dir.Ctime = now, now
	in.Nlink++
	in.Ctime = now
	f.touchLocked(dir.Ino, in.Ino)
	fillAttr(in, f.bs, &out.Attr)
	return tn.EmbeddedInode(), 0
}

// unlinkLocked removes name from dir and drops the link it held.
func (f *FS) unlinkLocked(dir *inode, name string) {
	c := f.t.Inodes[dir.Entries[name]]
	delete(dir.Entries, name)
	now := time.Now().UnixNano()
	dir.Mtime, dir.Ctime = now, now
	if c.isDir() {
		dir.Nlink--
		c.Nlink = 0
	} else {
		c.Nlink--
	}
	c.Ctime = now
	f.touchLocked(dir.Ino, c.Ino)
	f.freeLocked(c)
}

// Unlink removes a non-directory.
func (n *node) Unlink(_ context.Context, name string) syscall.Errno {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	c, e := n.childLocked(name)
	if e != 0 {
		return e
	}
	if c.isDir() {
		return syscall.EISDIR
	}
	n.f.unlinkLocked(n.f.t.Inodes[n.ino], name)
	return 0
}

// Rmdir removes an empty directory.
func (n *node) Rmdir(_ context.Context, name string) syscall.Errno {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	c, e := n.childLocked(name)
	if e != 0 {
		return e
	}
	if !c.isDir() {
		return syscall.ENOTDIR
	}
	if len(c.Entries) > 0 {
		return syscall.ENOTEMPTY
	}
	n.f.unlinkLocked(n.f.t.Inodes[n.ino], name)
	return 0
}

// Rename moves name to newName in newParent, replacing a file or empty
// directory there (RENAME_NOREPLACE refuses to; RENAME_EXCHANGE swaps).
func (n *node) Rename(_ context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok || np.f != n.f {
		return syscall.EXDEV
	}
	const noReplace, exchange = 1, 2 // RENAME_NOREPLACE, RENAME_EXCHANGE
	if flags&^(noReplace|exchange) != 0 || flags == noReplace|exchange {
		return syscall.EINVAL
	}
	f := n.f
	f.mu.Lock()
	defer f.mu.Unlock()
	src, dst := f.t.Inodes[n.ino], f.t.Inodes[np.ino]
	if src == nil || dst == nil || !src.isDir() || !dst.isDir() {
		return syscall.ENOTDIR
	}
	ci, ok := src.Entries[name]
	if !ok {
		return syscall.ENOENT
	}
	c := f.t.Inodes[ci]
	// A directory never moves below itself.
	if c.isDir() && f.t.within(dst, c.Ino) {
		return syscall.EINVAL
	}
	now := time.Now().UnixNano()
	oi, exists := dst.Entries[newName]
	if exists && oi == ci {
		return 0 // same inode: nothing to do
	}
	switch {
	case flags&exchange != 0:
		if !exists {
			return syscall.ENOENT
		}
		o := f.t.Inodes[oi]
		if o.isDir() && f.t.within(src, o.Ino) {
			return syscall.EINVAL
		}
		src.Entries[name], dst.Entries[newName] = oi, ci
		f.reparentLocked(c, src, dst)
		f.reparentLocked(o, dst, src)
		c.Ctime, o.Ctime = now, now
	default:
		if exists {
			if flags&noReplace != 0 {
				return syscall.EEXIST
			}
			o := f.t.Inodes[oi]
			switch {
			case o.isDir() && !c.isDir():
				return syscall.EISDIR
			case !o.isDir() && c.isDir():
				return syscall.ENOTDIR
			case o.isDir() && len(o.Entries) > 0:
				return syscall.ENOTEMPTY
			}
			f.unlinkLocked(dst, newName)
		}
		delete(src.Entries, name)
		dst.Entries[newName] = ci
		f.reparentLocked(c, src, dst)
		c.Ctime = now
	}
	src.Mtime, src.Ctime, dst.Mtime, dst.Ctime = now, now, now, now
	f.touchLocked(src.Ino, dst.Ino, ci)
	if exists {
		f.touchLocked(oi)
	}
	return 0
}

func (f *FS) reparentLocked(c, from, to *inode) {
	if !c.isDir() || from == to {
		return
	}
	c.Parent = to.Ino
	from.Nlink--
	to.Nlink++
}

// Open opens a file; O_TRUNC empties it.
func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 {
		if err := n.f.truncate(ctx, n.ino, 0); err != nil {
			return nil, 0, errno(err)
		}
	}
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	in := n.f.t.Inodes[n.ino]
	if in == nil {
		return nil, 0, syscall.ENOENT
	}
	in.open++
	h := &handle{}
	h.dirty.Store(flags&syscall.O_TRUNC != 0)
	return h, 0, 0
}

// Read serves file content; a block the backend cannot give is EIO.
func (n *node) Read(ctx context.Context, _ gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	got, err := n.f.read(ctx, n.ino, dest, off)
	if err != nil {
		n.f.log.Warn("read_failed", "ino", n.ino, "off", off, "err", err)
		return nil, errno(err)
	}
	return fuse.ReadResultData(dest[:got]), 0
}

// Write writes into the cache; a cache that cannot make room (the backend
// refuses the backlog) is EIO.
func (n *node) Write(ctx context.Context, fh gofs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if h, ok := fh.(*handle); ok {
		h.dirty.Store(true)
	}
	got, err := n.f.write(ctx, n.ino, data, off)
	if err != nil {
		n.f.log.Warn("write_failed", "ino", n.ino, "off", off, "err", err)
		if got == 0 {
			return 0, errno(err)
		}
	}
	return uint32(got), 0
}

// Flush runs on every close: a handle that wrote syncs, so close after
// write means durable on the backend.
func (n *node) Flush(ctx context.Context, fh gofs.FileHandle) syscall.Errno {
	h, ok := fh.(*handle)
	if !ok || !h.dirty.Swap(false) {
		return 0
	}
	if err := n.f.Sync(ctx); err != nil {
		h.dirty.Store(true) // a later close or fsync tries again
		n.f.log.Warn("flush_failed", "ino", n.ino, "err", err)
		return errno(err)
	}
	return 0
}

// Fsync makes everything durable on the backend.
func (n *node) Fsync(ctx context.Context, _ gofs.FileHandle, _ uint32) syscall.Errno {
	if err := n.f.Sync(ctx); err != nil {
		n.f.log.Warn("fsync_failed", "ino", n.ino, "err", err)
		return errno(err)
	}
	return 0
}

// Release closes a handle; an unlinked file goes with its last one.
func (n *node) Release(_ context.Context, _ gofs.FileHandle) syscall.Errno {
	n.f.mu.Lock()
	defer n.f.mu.Unlock()
	if in := n.f.t.Inodes[n.ino]; in != nil {
		in.open--
		n.f.freeLocked(in)
	}
	return 0
}

// Statfs reports the cache's bound as the block budget (the backend's
// capacity is the engine's to tell) and the inode count.
func (n *node) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	n.f.mu.Lock()
	inodes := uint64(len(n.f.t.Inodes))
	n.f.mu.Unlock()
	const total = 1 << 50 // bytes shown as the size: the backend bounds it
	out.Bsize = uint32(n.f.bs)
	out.Frsize = uint32(n.f.bs)
	out.Blocks = total / uint64(n.f.bs)
	out.Bfree, out.Bavail = out.Blocks, out.Blocks
	out.Files = inodes + 1<<32
	out.Ffree = 1 << 32
	out.NameLen = 255
	return 0
}
