package flist

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/testutil"
)

// Flists as rfs writes them. The facts come from rfs's source
// (github.com/threefoldtech/rfs at 75e19dc, June 2025), not from our
// writer:
//   - schema/schema.sql: the tables below, inode numbers from AUTOINCREMENT
//     (the root is 1, its parent 0, its name "/").
//   - src/pack.rs: directories are walked from a stack (a directory's
//     inode is written when it is taken off the stack, its other entries
//     right away), names go through String::from_utf8_lossy, the size,
//     owner, mode, rdev and times are lstat's, a symlink's target goes as
//     bytes into extra, files are read in 512 KiB pieces, each stored as a
//     block (id, key as 32-byte blobs, in order); no tag is written; the
//     routes are the stores' URLs.
//   - src/store/dir.rs: a dir store writes ROOT/ab/ID and reads that, then
//     ROOT/ID; src/store/http.rs reads URL/ab/ID, then URL/ID on a 404;
//     src/store/zdb.rs takes zdb:///PATH as a unix socket, no namespace.
//   - src/fungi/meta.rs: lookup is "where parent = ? and name = ?", first
//     row; src/fs/mod.rs reads 512 KiB chunks whatever block-size says.
const rfsSchema = `
CREATE TABLE IF NOT EXISTS inode (ino INTEGER PRIMARY KEY AUTOINCREMENT, parent INTEGER, name VARCHAR(255),
	size INTEGER, uid INTEGER, gid INTEGER, mode INTEGER, rdev INTEGER, ctime INTEGER, mtime INTEGER);
CREATE INDEX IF NOT EXISTS parents ON inode (parent);
CREATE INDEX IF NOT EXISTS names ON inode (name);
CREATE TABLE IF NOT EXISTS extra (ino INTEGER PRIMARY KEY, data VARCHAR(4096));
CREATE TABLE IF NOT EXISTS block (ino INTEGER, id VARCHAR(32), key VARCHAR(32));
CREATE INDEX IF NOT EXISTS block_ino ON block (ino);
CREATE TABLE IF NOT EXISTS tag (key VARCHAR(10) PRIMARY KEY, value VARCHAR(255));
CREATE TABLE IF NOT EXISTS route (start integer, end integer, url VARCHAR(2048));
`

// rfsLookup is rfs's lookup query (src/fungi/meta.rs), first row wins.
const rfsLookup = `select inode.ino from inode left join extra on inode.ino = extra.ino
	where inode.parent = ? and inode.name = ?;`

// rfsPack writes the flist of the tree at src to fl as rfs's pack does,
// handing each sealed block to put.
func rfsPack(t *testing.T, src, fl string, routes []string, put func(id [HashSize]byte, data []byte)) {
	t.Helper()
	db, err := sql.Open("sqlite", fl)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = db.Exec(rfsSchema)
	must(err)
	for _, r := range routes {
		_, err := db.Exec(`insert into route (start, end, url) values (?, ?, ?)`, 0, 255, r)
		must(err)
	}
	insert := func(parent int64, name, p string) int64 {
		var st syscall.Stat_t
		must(syscall.Lstat(p, &st))
		res, err := db.Exec(`insert into inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) values (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			parent, strings.ToValidUTF8(name, "\uFFFD"), st.Size, st.Uid, st.Gid, st.Mode, int64(st.Rdev), st.Ctim.Sec, st.Mtim.Sec)
		must(err)
		ino, err := res.LastInsertId()
		must(err)
		switch st.Mode & ModeType {
		case ModeSymlink:
			target, err := os.Readlink(p)
			must(err)
			_, err = db.Exec(`insert into extra(ino, data) values (?, ?)`, ino, []byte(target))
			must(err)
		case ModeRegular:
			f, err := os.Open(p)
			must(err)
			defer f.Close()
			buf := make([]byte, 512*1024)
			for {
				n, err := io.ReadFull(f, buf)
				if n > 0 {
					ref, data, serr := SealBlock(buf[:n])
					must(serr)
					put(ref.ID, data)
					_, err := db.Exec(`insert into block (ino, id, key) values (?, ?, ?)`, ino, ref.ID[:], ref.Key[:])
					must(err)
				}
				if err != nil {
					break
				}
			}
		}
		return ino
	}
	type item struct {
		parent     int64
		path, name string
	}
	stack := []item{{0, src, "/"}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		cur := insert(it.parent, it.name, it.path)
		ents, err := os.ReadDir(it.path)
		must(err)
		for _, e := range ents {
			p := filepath.Join(it.path, e.Name())
			if e.IsDir() {
				stack = append(stack, item{cur, p, e.Name()})
				continue
			}
			insert(cur, e.Name(), p)
		}
	}
}

// rfsDirPut writes blocks as rfs's dir store does (ROOT/ab/ID), or flat
// (ROOT/ID), the other layout rfs reads.
func rfsDirPut(t *testing.T, root string, flat bool) func([HashSize]byte, []byte) {
	return func(id [HashSize]byte, data []byte) {
		h := hex.EncodeToString(id[:])
		p := filepath.Join(root, h[:2], h)
		if flat {
			p = filepath.Join(root, h)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// mountRFS opens the flist at fl, opens its routes as a node does and
// mounts it.
func mountRFS(t *testing.T, fl string) (*Meta, *Mount) {
	t.Helper()
	testutil.RequireRoot(t)
	m, err := Open(context.Background(), fl)
	if err != nil {
		t.Fatalf("reading the rfs flist: %v", err)
	}
	store, err := NewRouter(m.Routes, StoreOptions{})
	if err != nil {
		t.Fatalf("opening its routes %v: %v", m.Routes, err)
	}
	t.Cleanup(func() { store.Close() })
	return m, mountMeta(t, m, MountConfig{Store: store})
}

// TestRFSFlistHTTPStore: an rfs flist whose route is a plain web server
// over an rfs dir store (blocks at URL/ab/ID, as rfs reads them) mounts
// and reads back the whole tree; busybox runs from it.
func TestRFSFlistHTTPStore(t *testing.T) {
	testutil.RequireRoot(t)
	src := busyboxTree(t)
	blocks := t.TempDir()
	var apiHits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			apiHits.Add(1)
		}
		http.FileServer(http.Dir(blocks)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	fl := filepath.Join(t.TempDir(), "rfs.fl")
	rfsPack(t, src, fl, []string{srv.URL}, rfsDirPut(t, blocks, false))
	_, mnt := mountRFS(t, fl)
	compareTrees(t, src, mnt.Dir)
	if out := runChroot(t, mnt.Dir, "sh", "-c", "cat /etc/passwd | head -1 | cut -d: -f1"); out != "root\n" {
		t.Errorf("chroot output %q, want %q", out, "root\n")
	}
	if n := apiHits.Load(); n != 0 {
		t.Errorf("%d requests to /api/ for blocks all at URL/ab/ID, want 0", n)
	}
}

// TestRFSFlistFlatDirStore: blocks in the flat layout ROOT/ID behind a
// dir:///ROOT route mount and read back.
func TestRFSFlistFlatDirStore(t *testing.T) {
	testutil.RequireRoot(t)
	src := busyboxTree(t)
	blocks := t.TempDir()
	fl := filepath.Join(t.TempDir(), "rfs.fl")
	rfsPack(t, src, fl, []string{"dir://" + blocks}, rfsDirPut(t, blocks, true))
	_, mnt := mountRFS(t, fl)
	compareTrees(t, src, mnt.Dir)
}

// TestRFSFlistZDBSocket: a zdb:///SOCKET route (0-db on a unix socket,
// default namespace) mounts and reads back.
func TestRFSFlistZDBSocket(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	st, err := zdb.Open(zdb.Config{DataDir: dir + "/data", IndexDir: dir + "/index"}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sock := filepath.Join(dir, "zdb.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := zdb.NewServer(zdb.ServerConfig{}, testutil.Logger(t), st)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	route := "zdb://" + sock
	zs, err := OpenStore(route, StoreOptions{})
	if err != nil {
		t.Fatalf("opening %s: %v", route, err)
	}
	t.Cleanup(func() { zs.Close() })
	if got := zs.URL(); got != route {
		t.Errorf("URL() = %q, want %q", got, route)
	}
	src := busyboxTree(t)
	fl := filepath.Join(t.TempDir(), "rfs.fl")
	rfsPack(t, src, fl, []string{route}, func(id [HashSize]byte, data []byte) {
		if err := zs.Set(ctx, id, data); err != nil {
			t.Fatalf("storing a block over the socket: %v", err)
		}
	})
	_, mnt := mountRFS(t, fl)
	compareTrees(t, src, mnt.Dir)
}

// TestRFSFlistEdgeCases: what rfs writes and reads that a strict reader
// would refuse: names made valid UTF-8 that collide (a file and a
// directory each), files whose size does not match their blocks (they
// changed while rfs read them). The mount resolves a duplicate name to
// the entry rfs's own lookup query returns, lists it once, and reads a
// file as its blocks end to end, cut at its size, zeros where the blocks
// hold less than the size.
func TestRFSFlistEdgeCases(t *testing.T) {
	testutil.RequireRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	write := func(rel string, data []byte) {
		t.Helper()
		p := filepath.Join(src, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("caf\xe8", []byte("latin-1 e grave\n"))
	write("caf\xe9", []byte("latin-1 e acute\n"))
	write("dir\xe8/x", []byte("in the first dir\n"))
	write("dir\xe9/y", []byte("in the second dir\n"))
	grew := make([]byte, 700<<10)
	rand.New(rand.NewSource(2)).Read(grew)
	write("grew", grew) // rfs saw 100 KiB, then read 700 KiB
	shrank := grew[:600<<10]
	write("shrank", shrank) // rfs saw 1.5 MiB, then read 600 KiB
	write("plain", []byte("unchanged\n"))

	blocks := t.TempDir()
	fl := filepath.Join(t.TempDir(), "rfs.fl")
	rfsPack(t, src, fl, []string{"dir://" + blocks}, rfsDirPut(t, blocks, false))
	db, err := sql.Open("sqlite", fl)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, size := range map[string]int{"grew": 100 << 10, "shrank": 3 << 19} {
		if _, err := db.Exec(`update inode set size = ? where name = ?`, size, name); err != nil {
			t.Fatal(err)
		}
	}
	// The entry rfs resolves each colliding name to, and its source.
	winner := func(name string) string {
		t.Helper()
		var ino int64
		if err := db.QueryRow(rfsLookup, RootIno, name).Scan(&ino); err != nil {
			t.Fatalf("rfs lookup of %q: %v", name, err)
		}
		var n int
		_ = db.QueryRow(`select count(*) from inode where parent = 1 and name = ?`, name).Scan(&n)
		if n != 2 {
			t.Fatalf("%d entries named %q, want 2 (the collision)", n, name)
		}
		// Which source entry became that inode: the one whose content
		// or child the inode holds.
		return lookupSource(t, db, ino)
	}
	wantFile, wantDir := winner("caf\uFFFD"), winner("dir\uFFFD")

	m, mnt := mountRFS(t, fl)
	got, err := os.ReadFile(filepath.Join(mnt.Dir, "caf\uFFFD"))
	if err != nil || string(got) != wantFile {
		t.Errorf("caf\\uFFFD = %q, %v; want %q (rfs's lookup)", got, err, wantFile)
	}
	ents, err := os.ReadDir(filepath.Join(mnt.Dir, "dir\uFFFD"))
	if err != nil || len(ents) != 1 || ents[0].Name() != wantDir {
		t.Errorf("dir\\uFFFD holds %v, %v; want only %q (rfs's lookup)", ents, err, wantDir)
	}
	top, err := os.ReadDir(mnt.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range top {
		names = append(names, e.Name())
	}
	if want := []string{"caf\uFFFD", "dir\uFFFD", "grew", "plain", "shrank"}; strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("root lists %q, want %q", names, want)
	}
	for _, tt := range []struct {
		name string
		want []byte
	}{
		{"grew", grew[:100<<10]},
		{"shrank", append(append([]byte{}, shrank...), make([]byte, 3<<19-len(shrank))...)},
		{"plain", []byte("unchanged\n")},
	} {
		got, err := os.ReadFile(filepath.Join(mnt.Dir, tt.name))
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("%s: got %d bytes, %v; want %d bytes", tt.name, len(got), err, len(tt.want))
		}
	}
	// Unpacking gives the same files as the mount.
	dst := filepath.Join(t.TempDir(), "unpacked")
	if err := Unpack(context.Background(), m, mnt.FS.cfg.Store, dst); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	compareTrees(t, mnt.Dir, dst)
}

// lookupSource names the source of an inode of TestRFSFlistEdgeCases: a
// file's content, or the name of a directory's only child.
func lookupSource(t *testing.T, db *sql.DB, ino int64) string {
	t.Helper()
	var child string
	if err := db.QueryRow(`select name from inode where parent = ?`, ino).Scan(&child); err == nil {
		return child
	}
	var id, key []byte
	if err := db.QueryRow(`select id, key from block where ino = ?`, ino).Scan(&id, &key); err != nil {
		t.Fatalf("inode %d: no child and no block: %v", ino, err)
	}
	h := hex.EncodeToString(id)
	var ref BlockRef
	copy(ref.ID[:], id)
	copy(ref.Key[:], key)
	var root string
	_ = db.QueryRow(`select url from route`).Scan(&root)
	u, _ := url.Parse(root)
	data, err := os.ReadFile(filepath.Join(u.Path, h[:2], h))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := OpenBlock(ref, data)
	if err != nil {
		t.Fatal(err)
	}
	return string(plain)
}

// TestBuildRefusesNonUTF8Names: rfs cannot open a flist holding a name
// that is not UTF-8, so building one is an error naming the entry.
func TestBuildRefusesNonUTF8Names(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "caf\xe9"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	store, _ := NewDirStore(t.TempDir())
	b := NewBuilder(BuildConfig{}, store, testutil.Logger(t))
	err := AddSource(context.Background(), b, src)
	if err == nil {
		_, err = b.Finish()
	}
	if err == nil || !strings.Contains(err.Error(), "not valid UTF-8") || !strings.Contains(err.Error(), `caf\xe9`) {
		t.Errorf("got %v, want an error naming caf\\xe9 as not valid UTF-8", err)
	}
}

// TestOurFlistAsRFSReadsIt: a flist we build, read with rfs's own queries
// and rules: the root found as rfs finds it, every name UTF-8 text, ids
// and keys 32-byte blobs, as many 512 KiB blocks as each size needs, and a
// dir route whose URL path (all rfs takes) is the store directory even
// when the store was named relative to the working directory.
func TestOurFlistAsRFSReadsIt(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	src := busyboxTree(t)
	store, err := NewRouter([]Route{{0, 0xff, "dir://relstore"}}, StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	fl, _ := buildDir(t, src, store)
	db, err := sql.Open("sqlite", fl)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	var root int64
	if err := db.QueryRow(`select inode.ino from inode left join extra on inode.ino = extra.ino where inode.parent = 0 limit 1;`).Scan(&root); err != nil || root != RootIno {
		t.Errorf("rfs's root query: ino %d, %v; want %d", root, err, RootIno)
	}
	rows, err := db.Query(`select ino, name, typeof(name), size, mode, (select count(*) from block where block.ino = inode.ino) from inode`)
	if err != nil {
		t.Fatal(err)
	}
	files := 0
	for rows.Next() {
		var ino, size, mode, nblocks int64
		var name, typ string
		if err := rows.Scan(&ino, &name, &typ, &size, &mode, &nblocks); err != nil {
			t.Fatal(err)
		}
		if typ != "text" || !utf8.ValidString(name) {
			t.Errorf("inode %d: name %q stored as %s, want UTF-8 text", ino, name, typ)
		}
		if want := (size + 512<<10 - 1) / (512 << 10); mode&ModeType == ModeRegular && nblocks != want {
			t.Errorf("inode %d: %d blocks for %d bytes, rfs reads %d of 512 KiB", ino, nblocks, size, want)
		}
		if mode&ModeType == ModeRegular {
			files++
		}
	}
	rows.Close()
	if files == 0 {
		t.Fatal("no files")
	}
	var bad int
	_ = db.QueryRow(`select count(*) from block where typeof(id) != 'blob' or length(id) != 32 or typeof(key) != 'blob' or length(key) != 32`).Scan(&bad)
	if bad != 0 {
		t.Errorf("%d blocks whose id or key is not a 32-byte blob", bad)
	}
	var bs sql.NullString
	_ = db.QueryRow(`select value from tag where key = 'block-size'`).Scan(&bs)
	if bs.Valid && bs.String != "524288" {
		t.Errorf("block-size tag %q: rfs reads 512 KiB blocks whatever it says", bs.String)
	}
	var route string
	if err := db.QueryRow(`select url from route`).Scan(&route); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(route)
	if err != nil || u.Scheme != "dir" || u.Path != filepath.Join(work, "relstore") {
		t.Errorf("route %q: rfs opens the path %q, want %q", route, u.Path, filepath.Join(work, "relstore"))
	}
}

// TestMetaAsRFSReads: the rows rfs may write, read without a mount: of
// entries sharing a name the lowest inode stays (with what it holds), the
// others go with everything under them; blocks past a file's size are
// dropped; fewer blocks than the size needs are kept as they are.
func TestMetaAsRFSReads(t *testing.T) {
	id := []byte(strings.Repeat("i", HashSize))
	raw := &rawMeta{
		inodes: []rawInode{
			{ino: 1, name: "/", mode: ModeDir | 0o755},
			{ino: 2, parent: 1, name: "d", mode: ModeDir | 0o755},
			{ino: 3, parent: 1, name: "d", mode: ModeDir | 0o755},
			{ino: 4, parent: 3, name: "lost", mode: ModeDir | 0o755},
			{ino: 5, parent: 4, name: "deep", mode: ModeRegular | 0o644},
			{ino: 6, parent: 2, name: "kept", mode: ModeRegular | 0o644, size: 10},
			{ino: 7, parent: 1, name: "short", mode: ModeRegular | 0o644, size: 3 << 20},
			{ino: 8, parent: 1, name: "d", mode: ModeRegular | 0o644},
		},
		blocks: []rawBlock{{6, id, id}, {6, id, id}, {6, id, id}, {7, id, id}},
	}
	m, err := raw.meta()
	if err != nil {
		t.Fatalf("meta: %v", err)
	}
	var paths []string
	_ = m.Walk(func(p string, _ *Inode) error { paths = append(paths, p); return nil })
	if got, want := strings.Join(paths, ","), ",d,d/kept,short"; got != want {
		t.Errorf("tree %q, want %q", got, want)
	}
	if len(m.Inodes) != 4 {
		t.Errorf("%d inodes kept, want 4 (the dropped entries' subtrees go too)", len(m.Inodes))
	}
	for _, tt := range []struct {
		path   string
		blocks int
	}{{"d/kept", 1}, {"short", 1}} {
		if in, ok := m.Lookup(tt.path); !ok || len(in.Blocks) != tt.blocks {
			t.Errorf("%s: %v blocks, want %d", tt.path, in, tt.blocks)
		}
	}
}
