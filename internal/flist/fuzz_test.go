package flist

import (
	"context"
	"encoding/binary"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// decodeRaw turns fuzz bytes into metadata rows: a stream of records, each
// a kind byte and varint or length-prefixed fields.
func decodeRaw(data []byte) *rawMeta {
	raw := &rawMeta{}
	num := func() int64 {
		v, n := binary.Varint(data)
		if n <= 0 {
			data = nil
			return 0
		}
		data = data[n:]
		return v
	}
	str := func() string {
		n := int(num())
		if n < 0 || n > len(data) {
			n = len(data)
		}
		s := string(data[:n])
		data = data[n:]
		return s
	}
	for len(data) > 0 {
		kind := data[0]
		data = data[1:]
		switch kind % 5 {
		case 0:
			raw.tags = append(raw.tags, [2]string{str(), str()})
		case 1:
			raw.inodes = append(raw.inodes, rawInode{num(), num(), str(), num(), num(), num(), num(), num(), num(), num()})
		case 2:
			raw.extras = append(raw.extras, rawExtra{num(), str()})
		case 3:
			raw.blocks = append(raw.blocks, rawBlock{num(), []byte(str()), []byte(str())})
		case 4:
			raw.routes = append(raw.routes, rawRoute{num(), num(), str()})
		}
	}
	return raw
}

func encodeRaw(raw *rawMeta) []byte {
	var b []byte
	num := func(v int64) { b = binary.AppendVarint(b, v) }
	str := func(s string) { num(int64(len(s))); b = append(b, s...) }
	for _, t := range raw.tags {
		b = append(b, 0)
		str(t[0])
		str(t[1])
	}
	for _, in := range raw.inodes {
		b = append(b, 1)
		num(in.ino)
		num(in.parent)
		str(in.name)
		for _, v := range []int64{in.size, in.uid, in.gid, in.mode, in.rdev, in.ctime, in.mtime} {
			num(v)
		}
	}
	for _, e := range raw.extras {
		b = append(b, 2)
		num(e.ino)
		str(e.data)
	}
	for _, bl := range raw.blocks {
		b = append(b, 3)
		num(bl.ino)
		str(string(bl.id))
		str(string(bl.key))
	}
	for _, r := range raw.routes {
		b = append(b, 4)
		num(r.start)
		num(r.end)
		str(r.url)
	}
	return b
}

// FuzzMeta feeds arbitrary rows to the metadata reader's checks: it returns
// a valid tree or an error, never panics or loops. (Fuzzing whole SQLite
// files through the pure-Go SQLite stalls the fuzzer; TestCorruptFiles
// covers corrupted files.)
func FuzzMeta(f *testing.F) {
	id := strings.Repeat("i", HashSize)
	f.Add(encodeRaw(&rawMeta{
		tags: [][2]string{{TagBlockSize, "4096"}},
		inodes: []rawInode{
			{ino: 1, name: "/", mode: ModeDir | 0o755},
			{ino: 2, parent: 1, name: "etc", mode: ModeDir | 0o755},
			{ino: 3, parent: 2, name: "hosts", mode: ModeRegular | 0o644, size: 5000},
			{ino: 4, parent: 1, name: "sh", mode: ModeSymlink | 0o777},
		},
		extras: []rawExtra{{4, "busybox"}},
		blocks: []rawBlock{{3, []byte(id), []byte(id)}, {3, []byte(id), []byte(id)}},
		routes: []rawRoute{{0, 255, "dir:///tmp/x"}},
	}))
	f.Add(encodeRaw(&rawMeta{ // as rfs may write: colliding names, sizes off their blocks
		inodes: []rawInode{
			{ino: 1, name: "/", mode: ModeDir | 0o755},
			{ino: 2, parent: 1, name: "d", mode: ModeDir | 0o755},
			{ino: 3, parent: 1, name: "d", mode: ModeDir | 0o755},
			{ino: 4, parent: 3, name: "f", mode: ModeRegular | 0o644, size: 1},
			{ino: 5, parent: 2, name: "g", mode: ModeRegular | 0o644, size: 3 << 20},
		},
		blocks: []rawBlock{{4, []byte(id), []byte(id)}, {4, []byte(id), []byte(id)}, {5, []byte(id), []byte(id)}},
	}))
	f.Add([]byte{1, 2, 0, 2, '/', 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeRaw(data).meta()
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("meta returned an invalid tree: %v", err)
		}
		_ = m.Walk(func(string, *Inode) error { return nil })
	})
}

// TestCorruptFiles: flipped bytes anywhere in a metadata file give an error
// or a valid tree, quickly.
func TestCorruptFiles(t *testing.T) {
	ctx := context.Background()
	store, _ := NewDirStore(t.TempDir())
	b := NewBuilder(BuildConfig{}, store, testutil.Logger(t))
	_ = b.Add(ctx, Entry{Path: "etc/hosts", Mode: ModeRegular | 0o644}, strings.NewReader(strings.Repeat("x", DefaultBlockSize+9000)))
	_ = b.Add(ctx, Entry{Path: "bin/sh", Mode: ModeSymlink | 0o777, Target: "busybox"}, nil)
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "seed.fl")
	if err := Write(ctx, p, m); err != nil {
		t.Fatal(err)
	}
	seed, _ := os.ReadFile(p)
	r := rand.New(rand.NewSource(7))
	q := filepath.Join(t.TempDir(), "bad.fl")
	bad := 0
	for i := 0; i < 300; i++ {
		d := append([]byte(nil), seed...)
		for j := 0; j < 1+r.Intn(16); j++ {
			d[r.Intn(len(d))] = byte(r.Intn(256))
		}
		if i%10 == 0 {
			d = d[:r.Intn(len(d))]
		}
		if err := os.WriteFile(q, d, 0o644); err != nil {
			t.Fatal(err)
		}
		c, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := Open(c, q)
		cancel()
		if err != nil {
			bad++
			continue
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("corrupt file %d read as an invalid tree: %v", i, err)
		}
	}
	if bad == 0 {
		t.Errorf("no corruption detected in 300 files")
	}
	if _, err := Open(ctx, filepath.Join(t.TempDir(), "missing.fl")); err == nil {
		t.Errorf("missing file opened")
	}
}
