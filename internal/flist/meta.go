package flist

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	_ "modernc.org/sqlite" // pure-Go SQLite driver "sqlite"

	"github.com/zos-go/zos/internal/atomicfile"
)

// File types, as in st_mode.
const (
	ModeType    = 0o170000
	ModeDir     = 0o040000
	ModeRegular = 0o100000
	ModeSymlink = 0o120000
	ModeChar    = 0o020000
	ModeBlock   = 0o060000
	ModeFIFO    = 0o010000
	ModeSocket  = 0o140000
)

// RootIno is the inode number of the root directory.
const RootIno = 1

// DefaultBlockSize is the plain size of a file's blocks (the last one may be
// shorter), as rfs packs them.
const DefaultBlockSize = 512 << 10

// Tag names this package writes.
const (
	TagVersion   = "version"
	TagBlockSize = "block-size"
	TagDesc      = "description"
)

// ErrInvalid marks a metadata file that is not a valid flist.
var ErrInvalid = errors.New("invalid flist")

// Inode is one entry of the tree. Mode holds the type bits and the
// permissions; Target is a symlink's target (the extra table).
type Inode struct {
	Ino    uint64
	Parent uint64
	Name   string
	Size   uint64
	UID    uint32
	GID    uint32
	Mode   uint32
	Rdev   uint64
	Ctime  int64
	Mtime  int64
	Target string
	Blocks []BlockRef
}

// Type returns the type bits of the mode.
func (i *Inode) Type() uint32 { return i.Mode & ModeType }

// IsDir reports whether the inode is a directory.
func (i *Inode) IsDir() bool { return i.Type() == ModeDir }

// Route sends the blocks whose id starts with a byte in [Start, End] to a
// store; several routes over one range replicate.
type Route struct {
	Start, End byte
	URL        string
}

// String renders a route as START-END=URL (hex bytes).
func (r Route) String() string { return fmt.Sprintf("%02x-%02x=%s", r.Start, r.End, r.URL) }

// Meta is a whole flist's metadata, in memory.
type Meta struct {
	Inodes    map[uint64]*Inode
	Children  map[uint64][]uint64 // sorted by name
	Tags      map[string]string
	Routes    []Route
	BlockSize int
}

// Limits on what a metadata file may hold.
const (
	maxNameLen   = 255
	maxTargetLen = 4096
)

// Lookup finds the inode at a slash-separated path relative to the root.
func (m *Meta) Lookup(p string) (*Inode, bool) {
	cur := m.Inodes[RootIno]
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		if name == "" {
			continue
		}
		var next *Inode
		for _, c := range m.Children[cur.Ino] {
			if m.Inodes[c].Name == name {
				next = m.Inodes[c]
				break
			}
		}
		if next == nil {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// Walk calls fn for every inode, parents before children, children in name
// order; path is relative to the root ("" for the root).
func (m *Meta) Walk(fn func(path string, in *Inode) error) error {
	var walk func(path string, in *Inode) error
	walk = func(path string, in *Inode) error {
		if err := fn(path, in); err != nil {
			return err
		}
		for _, c := range m.Children[in.Ino] {
			child := m.Inodes[c]
			if err := walk(filepath.Join(path, child.Name), child); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("", m.Inodes[RootIno])
}

// Blocks returns the distinct block ids of the flist.
func (m *Meta) Blocks() map[[HashSize]byte]BlockRef {
	out := make(map[[HashSize]byte]BlockRef)
	for _, in := range m.Inodes {
		for _, b := range in.Blocks {
			out[b.ID] = b
		}
	}
	return out
}

const schema = `
CREATE TABLE inode (ino INTEGER PRIMARY KEY, parent INTEGER, name VARCHAR(255), size INTEGER,
	uid INTEGER, gid INTEGER, mode INTEGER, rdev INTEGER, ctime INTEGER, mtime INTEGER);
CREATE INDEX parents ON inode (parent);
CREATE INDEX names ON inode (name);
CREATE TABLE extra (ino INTEGER PRIMARY KEY, data VARCHAR(4096));
CREATE TABLE block (ino INTEGER, id VARCHAR(32), key VARCHAR(32));
CREATE INDEX block_ino ON block (ino);
CREATE TABLE tag (key VARCHAR(10) PRIMARY KEY, value VARCHAR(255));
CREATE TABLE route (start INTEGER, end INTEGER, url VARCHAR(2048));
`

func dsn(path string, query string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	return (&url.URL{Scheme: "file", Path: abs}).String() + "?" + query, nil
}

// Write stores m as a v2 flist at path (written to a temporary file, then
// renamed).
func Write(ctx context.Context, path string, m *Meta) error {
	if err := m.Validate(); err != nil {
		return err
	}
	tmp := path + ".tmp"
	_ = os.Remove(tmp)
	d, err := dsn(tmp, "_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", d)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	err = writeDB(ctx, db, m)
	if cerr := db.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := atomicfile.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

func writeDB(ctx context.Context, db *sql.DB, m *Meta) error {
	if _, err := db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("creating schema: %w", err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	insInode, err := tx.PrepareContext(ctx, `INSERT INTO inode VALUES (?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	insExtra, err := tx.PrepareContext(ctx, `INSERT INTO extra VALUES (?,?)`)
	if err != nil {
		return err
	}
	insBlock, err := tx.PrepareContext(ctx, `INSERT INTO block VALUES (?,?,?)`)
	if err != nil {
		return err
	}
	err = m.Walk(func(_ string, in *Inode) error {
		if _, err := insInode.ExecContext(ctx, int64(in.Ino), int64(in.Parent), in.Name, int64(in.Size),
			in.UID, in.GID, in.Mode, int64(in.Rdev), in.Ctime, in.Mtime); err != nil {
			return fmt.Errorf("inode %d: %w", in.Ino, err)
		}
		if in.Type() == ModeSymlink {
			if _, err := insExtra.ExecContext(ctx, int64(in.Ino), in.Target); err != nil {
				return fmt.Errorf("extra %d: %w", in.Ino, err)
			}
		}
		for _, b := range in.Blocks {
			if _, err := insBlock.ExecContext(ctx, int64(in.Ino), b.ID[:], b.Key[:]); err != nil {
				return fmt.Errorf("block of %d: %w", in.Ino, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	tags := make(map[string]string, len(m.Tags)+2)
	for k, v := range m.Tags {
		tags[k] = v
	}
	tags[TagVersion] = "v2"
	tags[TagBlockSize] = strconv.Itoa(m.blockSize())
	for k, v := range tags {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tag VALUES (?,?)`, k, v); err != nil {
			return fmt.Errorf("tag %s: %w", k, err)
		}
	}
	for _, r := range m.Routes {
		if _, err := tx.ExecContext(ctx, `INSERT INTO route VALUES (?,?,?)`, r.Start, r.End, r.URL); err != nil {
			return fmt.Errorf("route %s: %w", r, err)
		}
	}
	return tx.Commit()
}

func (m *Meta) blockSize() int {
	if m.BlockSize == 0 {
		return DefaultBlockSize
	}
	return m.BlockSize
}

// Open reads and validates the flist at path.
func Open(ctx context.Context, path string) (*Meta, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening flist: %w", err)
	}
	d, err := dsn(path, "mode=ro&immutable=1&_pragma=cell_size_check(1)")
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", d)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	m, err := readDB(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return m, nil
}

// rawMeta is the rows of a metadata file, before any check.
type rawMeta struct {
	tags   [][2]string
	inodes []rawInode
	extras []rawExtra
	blocks []rawBlock
	routes []rawRoute
}

type rawInode struct {
	ino, parent          int64
	name                 string
	size, uid, gid, mode int64
	rdev, ctime, mtime   int64
}

type rawExtra struct {
	ino  int64
	data string
}

type rawBlock struct {
	ino     int64
	id, key []byte
}

type rawRoute struct {
	start, end int64
	url        string
}

func readDB(ctx context.Context, db *sql.DB) (*Meta, error) {
	var raw rawMeta
	err := query(ctx, db, `SELECT key, value FROM tag`, func(rows *sql.Rows) error {
		var t [2]string
		err := rows.Scan(&t[0], &t[1])
		raw.tags = append(raw.tags, t)
		return err
	})
	if err == nil {
		err = query(ctx, db, `SELECT ino, parent, name, size, uid, gid, mode, rdev, ctime, mtime FROM inode`, func(rows *sql.Rows) error {
			var in rawInode
			err := rows.Scan(&in.ino, &in.parent, &in.name, &in.size, &in.uid, &in.gid, &in.mode, &in.rdev, &in.ctime, &in.mtime)
			raw.inodes = append(raw.inodes, in)
			return err
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT ino, data FROM extra`, func(rows *sql.Rows) error {
			var e rawExtra
			err := rows.Scan(&e.ino, &e.data)
			raw.extras = append(raw.extras, e)
			return err
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT ino, id, key FROM block ORDER BY rowid`, func(rows *sql.Rows) error {
			var b rawBlock
			err := rows.Scan(&b.ino, &b.id, &b.key)
			raw.blocks = append(raw.blocks, b)
			return err
		})
	}
	if err == nil {
		err = query(ctx, db, `SELECT start, end, url FROM route`, func(rows *sql.Rows) error {
			var r rawRoute
			err := rows.Scan(&r.start, &r.end, &r.url)
			raw.routes = append(raw.routes, r)
			return err
		})
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return raw.meta()
}

func query(ctx context.Context, db *sql.DB, q string, row func(*sql.Rows) error) error {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// meta checks the rows and assembles the tree.
func (raw *rawMeta) meta() (*Meta, error) {
	m := &Meta{Inodes: make(map[uint64]*Inode), Children: make(map[uint64][]uint64), Tags: make(map[string]string)}
	for _, t := range raw.tags {
		m.Tags[t[0]] = t[1]
	}
	m.BlockSize = DefaultBlockSize
	if v, ok := m.Tags[TagBlockSize]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4096 || n > MaxBlockSize {
			return nil, fmt.Errorf("%w: block size %q", ErrInvalid, v)
		}
		m.BlockSize = n
	}
	for _, r := range raw.inodes {
		if r.ino <= 0 || r.parent < 0 || r.size < 0 || r.uid < 0 || r.uid > 1<<32-1 || r.gid < 0 || r.gid > 1<<32-1 ||
			r.mode < 0 || r.mode > 0o177777 || r.rdev < 0 {
			return nil, fmt.Errorf("%w: inode %d: field out of range", ErrInvalid, r.ino)
		}
		if _, dup := m.Inodes[uint64(r.ino)]; dup {
			return nil, fmt.Errorf("%w: inode %d twice", ErrInvalid, r.ino)
		}
		m.Inodes[uint64(r.ino)] = &Inode{Ino: uint64(r.ino), Parent: uint64(r.parent), Name: r.name, Size: uint64(r.size),
			UID: uint32(r.uid), GID: uint32(r.gid), Mode: uint32(r.mode), Rdev: uint64(r.rdev), Ctime: r.ctime, Mtime: r.mtime}
	}
	for _, e := range raw.extras {
		if in, ok := m.Inodes[uint64(e.ino)]; ok && e.ino > 0 {
			in.Target = e.data
		}
	}
	for _, b := range raw.blocks {
		in, ok := m.Inodes[uint64(b.ino)]
		if !ok || b.ino <= 0 || len(b.id) != HashSize || len(b.key) != HashSize {
			return nil, fmt.Errorf("%w: block of inode %d: bad id, key or inode", ErrInvalid, b.ino)
		}
		if in.Type() != ModeRegular {
			return nil, fmt.Errorf("%w: inode %d: blocks on a non-file", ErrInvalid, b.ino)
		}
		if uint64(len(in.Blocks))*uint64(m.BlockSize) >= in.Size {
			continue // past the size: never read, by rfs either
		}
		var ref BlockRef
		copy(ref.ID[:], b.id)
		copy(ref.Key[:], b.key)
		in.Blocks = append(in.Blocks, ref)
	}
	for _, r := range raw.routes {
		if r.start < 0 || r.end > 255 || r.start > r.end {
			return nil, fmt.Errorf("%w: route %d-%d", ErrInvalid, r.start, r.end)
		}
		m.Routes = append(m.Routes, Route{Start: byte(r.start), End: byte(r.end), URL: r.url})
	}
	for _, in := range m.Inodes {
		if in.Ino != RootIno {
			m.Children[in.Parent] = append(m.Children[in.Parent], in.Ino)
		}
	}
	for p, cs := range m.Children {
		sort.Slice(cs, func(i, j int) bool {
			a, b := m.Inodes[cs[i]], m.Inodes[cs[j]]
			return a.Name < b.Name || a.Name == b.Name && a.Ino < b.Ino
		})
		m.Children[p] = cs
	}
	m.dropDuplicates()
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// dropDuplicates keeps, of the entries of a directory that share a name,
// the one with the lowest inode number, and drops the others with all
// they hold. rfs writes such flists (it stores names made valid UTF-8, so
// two names that differ only in invalid bytes become one) and finds a name
// with a query that returns the lowest inode first: the others are never
// reachable by path there either. Children must be sorted by name, then
// inode.
func (m *Meta) dropDuplicates() {
	var drop func(ino uint64)
	drop = func(ino uint64) {
		kids := m.Children[ino]
		delete(m.Children, ino)
		delete(m.Inodes, ino)
		for _, c := range kids {
			if in := m.Inodes[c]; in != nil && in.Parent == ino {
				drop(c)
			}
		}
	}
	var dups []uint64
	for p, cs := range m.Children {
		kept := make([]uint64, 0, len(cs))
		for i, c := range cs {
			if i > 0 && m.Inodes[c].Name == m.Inodes[cs[i-1]].Name {
				dups = append(dups, c)
				continue
			}
			kept = append(kept, c)
		}
		m.Children[p] = kept
	}
	for _, c := range dups {
		if in := m.Inodes[c]; in != nil {
			drop(c)
		}
	}
}

// Validate checks the tree: one root directory, every other inode reachable
// from it under a valid unique name in a directory, blocks only on regular
// files and at most as many as the size needs. A file with fewer (rfs
// writes such flists) reads as zeros past its blocks.
func (m *Meta) Validate() error {
	root, ok := m.Inodes[RootIno]
	if !ok || !root.IsDir() {
		return fmt.Errorf("%w: no root directory", ErrInvalid)
	}
	bs := uint64(m.blockSize())
	seen := 0
	var visit func(in *Inode, depth int) error
	visit = func(in *Inode, depth int) error {
		seen++
		if depth > 4096 {
			return fmt.Errorf("%w: tree too deep", ErrInvalid)
		}
		switch in.Type() {
		case ModeDir, ModeSymlink, ModeChar, ModeBlock, ModeFIFO, ModeSocket:
			if len(in.Blocks) > 0 {
				return fmt.Errorf("%w: inode %d: blocks on a non-file", ErrInvalid, in.Ino)
			}
		case ModeRegular:
			if want := (in.Size + bs - 1) / bs; uint64(len(in.Blocks)) > want {
				return fmt.Errorf("%w: inode %d: %d blocks for %d bytes", ErrInvalid, in.Ino, len(in.Blocks), in.Size)
			}
		default:
			return fmt.Errorf("%w: inode %d: unknown type %o", ErrInvalid, in.Ino, in.Type())
		}
		if in.Type() == ModeSymlink && (in.Target == "" || len(in.Target) > maxTargetLen) {
			return fmt.Errorf("%w: inode %d: bad symlink target", ErrInvalid, in.Ino)
		}
		kids := m.Children[in.Ino]
		if len(kids) > 0 && !in.IsDir() {
			return fmt.Errorf("%w: inode %d: children under a non-directory", ErrInvalid, in.Ino)
		}
		for i, c := range kids {
			child := m.Inodes[c]
			if child == nil || child.Parent != in.Ino {
				return fmt.Errorf("%w: inode %d: bad child %d", ErrInvalid, in.Ino, c)
			}
			if !validName(child.Name) {
				return fmt.Errorf("%w: inode %d: bad name %q", ErrInvalid, c, child.Name)
			}
			if i > 0 && m.Inodes[kids[i-1]].Name == child.Name {
				return fmt.Errorf("%w: inode %d: name %q twice", ErrInvalid, in.Ino, child.Name)
			}
			if err := visit(child, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(root, 0); err != nil {
		return err
	}
	if seen != len(m.Inodes) {
		return fmt.Errorf("%w: %d inodes not reachable from the root", ErrInvalid, len(m.Inodes)-seen)
	}
	return nil
}

func validName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= maxNameLen && !strings.ContainsAny(s, "/\x00")
}
