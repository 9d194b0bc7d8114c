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
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
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
	d, err := dsn(path, "mode=ro&immutable=1")
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

func readDB(ctx context.Context, db *sql.DB) (*Meta, error) {
	m := &Meta{Inodes: make(map[uint64]*Inode), Children: make(map[uint64][]uint64), Tags: make(map[string]string)}
	rows, err := db.QueryContext(ctx, `SELECT key, value FROM tag`)
	if err != nil {
		return nil, fmt.Errorf("%w: tags: %v", ErrInvalid, err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: tag: %v", ErrInvalid, err)
		}
		m.Tags[k] = v
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	m.BlockSize = DefaultBlockSize
	if v, ok := m.Tags[TagBlockSize]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4096 || n > MaxBlockSize {
			return nil, fmt.Errorf("%w: block size %q", ErrInvalid, v)
		}
		m.BlockSize = n
	}

	rows, err = db.QueryContext(ctx, `SELECT ino, parent, name, size, uid, gid, mode, rdev, ctime, mtime FROM inode`)
	if err != nil {
		return nil, fmt.Errorf("%w: inodes: %v", ErrInvalid, err)
	}
	for rows.Next() {
		var in Inode
		var ino, parent, size, uid, gid, mode, rdev int64
		if err := rows.Scan(&ino, &parent, &in.Name, &size, &uid, &gid, &mode, &rdev, &in.Ctime, &in.Mtime); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: inode: %v", ErrInvalid, err)
		}
		if ino <= 0 || parent < 0 || size < 0 || uid < 0 || uid > 1<<32-1 || gid < 0 || gid > 1<<32-1 ||
			mode < 0 || mode > 0o177777 || rdev < 0 {
			rows.Close()
			return nil, fmt.Errorf("%w: inode %d: field out of range", ErrInvalid, ino)
		}
		if _, dup := m.Inodes[uint64(ino)]; dup {
			rows.Close()
			return nil, fmt.Errorf("%w: inode %d twice", ErrInvalid, ino)
		}
		in.Ino, in.Parent, in.Size = uint64(ino), uint64(parent), uint64(size)
		in.UID, in.GID, in.Mode, in.Rdev = uint32(uid), uint32(gid), uint32(mode), uint64(rdev)
		m.Inodes[in.Ino] = &in
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, `SELECT ino, data FROM extra`)
	if err != nil {
		return nil, fmt.Errorf("%w: extra: %v", ErrInvalid, err)
	}
	for rows.Next() {
		var ino int64
		var data string
		if err := rows.Scan(&ino, &data); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: extra: %v", ErrInvalid, err)
		}
		if in, ok := m.Inodes[uint64(ino)]; ok && ino > 0 {
			in.Target = data
		}
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, `SELECT ino, id, key FROM block ORDER BY rowid`)
	if err != nil {
		return nil, fmt.Errorf("%w: blocks: %v", ErrInvalid, err)
	}
	for rows.Next() {
		var ino int64
		var id, key []byte
		if err := rows.Scan(&ino, &id, &key); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: block: %v", ErrInvalid, err)
		}
		in, ok := m.Inodes[uint64(ino)]
		if !ok || ino <= 0 || len(id) != HashSize || len(key) != HashSize {
			rows.Close()
			return nil, fmt.Errorf("%w: block of inode %d: bad id, key or inode", ErrInvalid, ino)
		}
		var b BlockRef
		copy(b.ID[:], id)
		copy(b.Key[:], key)
		in.Blocks = append(in.Blocks, b)
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}

	rows, err = db.QueryContext(ctx, `SELECT start, end, url FROM route`)
	if err != nil {
		return nil, fmt.Errorf("%w: routes: %v", ErrInvalid, err)
	}
	for rows.Next() {
		var start, end int64
		var u string
		if err := rows.Scan(&start, &end, &u); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: route: %v", ErrInvalid, err)
		}
		if start < 0 || end > 255 || start > end {
			rows.Close()
			return nil, fmt.Errorf("%w: route %d-%d", ErrInvalid, start, end)
		}
		m.Routes = append(m.Routes, Route{Start: byte(start), End: byte(end), URL: u})
	}
	if err := closeRows(rows); err != nil {
		return nil, err
	}
	for _, in := range m.Inodes {
		if in.Ino != RootIno {
			m.Children[in.Parent] = append(m.Children[in.Parent], in.Ino)
		}
	}
	for p, cs := range m.Children {
		sort.Slice(cs, func(i, j int) bool { return m.Inodes[cs[i]].Name < m.Inodes[cs[j]].Name })
		m.Children[p] = cs
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	rows.Close()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// Validate checks the tree: one root directory, every other inode reachable
// from it under a valid unique name in a directory, blocks only on regular
// files and as many as the size needs.
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
			if want := (in.Size + bs - 1) / bs; uint64(len(in.Blocks)) != want {
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
