package flist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"unicode/utf8"
)

// Entry describes one entry added to a build. Mode holds the type bits and
// the permissions. Target is a symlink's target; Link, when set, makes the
// entry a hard link to an earlier entry at that path.
type Entry struct {
	Path   string
	Mode   uint32
	UID    uint32
	GID    uint32
	Rdev   uint64
	Mtime  int64
	Ctime  int64
	Target string
	Link   string
}

// BuildStats counts what a build did so far.
type BuildStats struct {
	Entries   int
	Bytes     uint64 // plain bytes of file content
	Blocks    int    // blocks of file content, with repeats
	NewBlocks int    // distinct blocks written to the store
	Stored    uint64 // bytes written to the store
}

// BuildConfig tunes a build.
// Files are always cut in DefaultBlockSize blocks: rfs ignores the
// block-size tag and reads 512 KiB blocks whatever it says.
type BuildConfig struct {
	// Progress, when set, is called after each entry.
	Progress func(BuildStats)
	Tags     map[string]string
}

// Builder assembles a tree in memory while it writes file content as blocks
// to a store; Finish returns the metadata. Entries are checked as they come:
// absolute paths, ".." components, entries under a symlink or a file, hard
// links to missing or non-file entries and duplicates within one layer are
// errors naming the entry. Nothing is ever written to the local file system.
type Builder struct {
	store Store
	cfg   BuildConfig
	log   *slog.Logger
	root  *bnode
	layer int
	stats BuildStats
	seen  map[[HashSize]byte]bool // blocks stored by this build
	buf   []byte
}

type bnode struct {
	in       Inode
	children map[string]*bnode
	layer    int
}

// NewBuilder starts a build writing blocks to store.
func NewBuilder(cfg BuildConfig, store Store, log *slog.Logger) *Builder {
	return &Builder{
		store: store, cfg: cfg, log: log,
		root: &bnode{in: Inode{Mode: ModeDir | 0o755}, children: map[string]*bnode{}, layer: -1},
		seen: make(map[[HashSize]byte]bool),
		buf:  make([]byte, DefaultBlockSize),
	}
}

// Stats returns the counters so far.
func (b *Builder) Stats() BuildStats { return b.stats }

// NextLayer starts a new layer: entries of later layers replace those of
// earlier ones, and whiteouts remove them.
func (b *Builder) NextLayer() { b.layer++ }

// splitPath checks an entry path and returns its components; the root is
// no components.
func splitPath(p string) ([]string, error) {
	if strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("entry %q: absolute path", p)
	}
	if strings.ContainsRune(p, 0) {
		return nil, fmt.Errorf("entry %q: NUL in path", p)
	}
	var out []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("entry %q: \"..\" in path", p)
		}
		if len(c) > maxNameLen {
			return nil, fmt.Errorf("entry %q: name too long", p)
		}
		if !utf8.ValidString(c) {
			// rfs reads names as UTF-8 and cannot open a flist
			// holding another; it would have written U+FFFD for
			// each invalid byte, which can turn two names into one.
			return nil, fmt.Errorf("entry %q: name %q is not valid UTF-8 (rfs cannot read it): rename it", p, c)
		}
		out = append(out, c)
	}
	return out, nil
}

// dir returns the directory holding the last component, creating missing
// parents.
func (b *Builder) dir(p string, comps []string) (*bnode, error) {
	cur := b.root
	for i, c := range comps[:len(comps)-1] {
		next, ok := cur.children[c]
		if !ok {
			next = &bnode{in: Inode{Name: c, Mode: ModeDir | 0o755}, children: map[string]*bnode{}, layer: b.layer}
			cur.children[c] = next
		}
		switch next.in.Type() {
		case ModeDir:
		case ModeSymlink:
			return nil, fmt.Errorf("entry %q: parent %q is a symlink", p, strings.Join(comps[:i+1], "/"))
		default:
			return nil, fmt.Errorf("entry %q: parent %q is not a directory", p, strings.Join(comps[:i+1], "/"))
		}
		cur = next
	}
	return cur, nil
}

func (b *Builder) lookup(comps []string) *bnode {
	cur := b.root
	for _, c := range comps {
		next, ok := cur.children[c]
		if !ok {
			return nil
		}
		cur = next
	}
	return cur
}

// Add adds an entry; r is the content of a regular file (nil otherwise).
func (b *Builder) Add(ctx context.Context, e Entry, r io.Reader) error {
	comps, err := splitPath(e.Path)
	if err != nil {
		return err
	}
	in := Inode{Mode: e.Mode, UID: e.UID, GID: e.GID, Rdev: e.Rdev, Mtime: e.Mtime, Ctime: e.Ctime}
	if e.Link != "" {
		lc, err := splitPath(e.Link)
		if err != nil {
			return fmt.Errorf("entry %q: hard link: %w", e.Path, err)
		}
		t := b.lookup(lc)
		if t == nil {
			return fmt.Errorf("entry %q: hard link to missing %q", e.Path, e.Link)
		}
		if t.in.IsDir() {
			return fmt.Errorf("entry %q: hard link to directory %q", e.Path, e.Link)
		}
		in = t.in
		in.Blocks = append([]BlockRef(nil), t.in.Blocks...)
	} else {
		switch e.Mode & ModeType {
		case ModeDir, ModeChar, ModeBlock, ModeFIFO, ModeSocket:
		case ModeSymlink:
			if e.Target == "" || len(e.Target) > maxTargetLen {
				return fmt.Errorf("entry %q: bad symlink target", e.Path)
			}
			in.Target = e.Target
		case ModeRegular:
			if r == nil {
				return fmt.Errorf("entry %q: no content", e.Path)
			}
			if err := b.content(ctx, e.Path, &in, r); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unknown type %o", e.Path, e.Mode&ModeType)
		}
	}
	b.stats.Entries++
	defer b.progress()
	if len(comps) == 0 {
		if in.Type() != ModeDir {
			return fmt.Errorf("entry %q: the root must be a directory", e.Path)
		}
		b.root.in = in
		return nil
	}
	parent, err := b.dir(e.Path, comps)
	if err != nil {
		return err
	}
	name := comps[len(comps)-1]
	in.Name = name
	old, exists := parent.children[name]
	switch {
	case exists && old.in.IsDir() && in.IsDir():
		old.in = in // new metadata, children kept
		old.layer = b.layer
		return nil
	case exists && old.layer == b.layer:
		return fmt.Errorf("entry %q: duplicate entry", e.Path)
	}
	n := &bnode{in: in, layer: b.layer}
	if in.IsDir() {
		n.children = map[string]*bnode{}
	}
	parent.children[name] = n
	return nil
}

func (b *Builder) progress() {
	if b.cfg.Progress != nil {
		b.cfg.Progress(b.stats)
	}
}

func (b *Builder) content(ctx context.Context, p string, in *Inode, r io.Reader) error {
	for {
		n, err := io.ReadFull(r, b.buf)
		if n > 0 {
			ref, data, serr := SealBlock(b.buf[:n])
			if serr != nil {
				return fmt.Errorf("entry %q: %w", p, serr)
			}
			if !b.seen[ref.ID] {
				if serr := b.store.Set(ctx, ref.ID, data); serr != nil {
					return fmt.Errorf("entry %q: storing block %s: %w", p, ref, serr)
				}
				b.seen[ref.ID] = true
				b.stats.NewBlocks++
				b.stats.Stored += uint64(len(data))
			}
			in.Blocks = append(in.Blocks, ref)
			in.Size += uint64(n)
			b.stats.Blocks++
			b.stats.Bytes += uint64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("entry %q: reading content: %w", p, err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// Whiteout removes the entry at p (an OCI ".wh." file); a missing entry is
// fine.
func (b *Builder) Whiteout(p string) error {
	comps, err := splitPath(p)
	if err != nil || len(comps) == 0 {
		return fmt.Errorf("whiteout %q: bad path", p)
	}
	if parent := b.lookup(comps[:len(comps)-1]); parent != nil && parent.children != nil {
		delete(parent.children, comps[len(comps)-1])
	}
	return nil
}

// Opaque removes what earlier layers put in the directory at p (an OCI
// ".wh..wh..opq" file).
func (b *Builder) Opaque(p string) error {
	comps, err := splitPath(p)
	if err != nil {
		return fmt.Errorf("opaque whiteout %q: bad path", p)
	}
	d := b.lookup(comps)
	if d == nil || d.children == nil {
		return nil
	}
	for name, c := range d.children {
		if c.layer < b.layer {
			delete(d.children, name)
		}
	}
	return nil
}

// Finish numbers the inodes (breadth first, names sorted) and returns the
// metadata, with the store's routes when it is a Router.
func (b *Builder) Finish() (*Meta, error) {
	m := &Meta{Inodes: map[uint64]*Inode{}, Children: map[uint64][]uint64{}, Tags: map[string]string{}, BlockSize: DefaultBlockSize}
	for k, v := range b.cfg.Tags {
		m.Tags[k] = v
	}
	if r, ok := b.store.(*Router); ok {
		m.Routes = r.Routes()
	} else {
		m.Routes = []Route{{Start: 0, End: 0xff, URL: b.store.URL()}}
	}
	next := uint64(RootIno)
	type item struct {
		n      *bnode
		parent uint64
	}
	queue := []item{{b.root, 0}}
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		in := it.n.in
		in.Ino, in.Parent = next, it.parent
		if in.Ino == RootIno {
			in.Name = "/"
		}
		next++
		m.Inodes[in.Ino] = &in
		if it.parent != 0 {
			m.Children[it.parent] = append(m.Children[it.parent], in.Ino)
		}
		names := make([]string, 0, len(it.n.children))
		for name := range it.n.children {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			queue = append(queue, item{it.n.children[name], in.Ino})
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}
