package flist

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func TestBlockRoundTrip(t *testing.T) {
	plain := bytes.Repeat([]byte("zero-os "), 1000)
	ref, data, err := SealBlock(plain)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenBlock(ref, data)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	ref2, data2, _ := SealBlock(plain)
	if ref2 != ref || !bytes.Equal(data, data2) {
		t.Errorf("sealing is not deterministic")
	}
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 1
	if _, err := OpenBlock(ref, bad); err == nil {
		t.Errorf("tampered block opened")
	}
	other := ref
	other.Key[0] ^= 1
	if _, err := OpenBlock(other, data); err == nil {
		t.Errorf("block opened with the wrong key")
	}
}

type tarEntry struct {
	h    tar.Header
	body string
}

func makeTar(t testing.TB, gz bool, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w *tar.Writer
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = tar.NewWriter(zw)
	} else {
		w = tar.NewWriter(&buf)
	}
	for _, e := range entries {
		h := e.h
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if e.body != "" {
			if _, err := w.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func reg(name, body string) tarEntry {
	return tarEntry{h: tar.Header{Name: name, Typeflag: tar.TypeReg}, body: body}
}

func dirEntry(name string) tarEntry {
	return tarEntry{h: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}

func buildTar(t testing.TB, data []byte) (*Meta, *DirStore, error) {
	store, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := NewBuilder(BuildConfig{}, store, testutil.Logger(t))
	if err := AddTar(context.Background(), b, bytes.NewReader(data)); err != nil {
		return nil, store, err
	}
	m, err := b.Finish()
	return m, store, err
}

func TestHostileTar(t *testing.T) {
	tests := []struct {
		name    string
		entries []tarEntry
		want    string // error substring; "" means accepted
	}{
		{"absolute", []tarEntry{reg("/etc/passwd", "x")}, "absolute path"},
		{"dotdot", []tarEntry{reg("a/../../etc/passwd", "x")}, `".." in path`},
		{"dotdot only", []tarEntry{reg("..", "x")}, `".." in path`},
		{"hardlink out", []tarEntry{{h: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}}}, "hard link"},
		{"hardlink absolute", []tarEntry{{h: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "/etc/shadow"}}}, "absolute path"},
		{"hardlink missing", []tarEntry{{h: tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "nope"}}}, "missing"},
		{"through symlink", []tarEntry{
			{h: tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "/etc"}},
			reg("evil/passwd", "x"),
		}, "is a symlink"},
		{"under a file", []tarEntry{reg("f", "x"), reg("f/g", "y")}, "not a directory"},
		{"duplicate", []tarEntry{reg("a", "1"), reg("a", "2")}, "duplicate entry"},
		{"dir twice is fine", []tarEntry{dirEntry("d/"), dirEntry("d/"), reg("d/x", "1")}, ""},
		{"huge size", nil, "unexpected EOF"},
		{"absolute symlink is data", []tarEntry{{h: tar.Header{Name: "sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := makeTar(t, false, tt.entries...)
			if tt.name == "huge size" {
				data = hugeTar(t)
			}
			_, _, err := buildTar(t, data)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestTarGzEntries(t *testing.T) {
	data := makeTar(t, true,
		dirEntry("./"),
		dirEntry("./etc/"),
		reg("./etc/hosts", "127.0.0.1 localhost\n"),
		tarEntry{h: tar.Header{Name: "./etc/hosts2", Typeflag: tar.TypeLink, Linkname: "./etc/hosts"}},
		tarEntry{h: tar.Header{Name: "./dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}},
		tarEntry{h: tar.Header{Name: "./bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"}},
		tarEntry{h: tar.Header{Name: "./home/u/f", Typeflag: tar.TypeReg, Uid: 1000, Gid: 100, Mode: 0o4711}, body: "x"},
	)
	m, _, err := buildTar(t, data)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		path string
		mode uint32
		size uint64
	}{
		{"etc/hosts", ModeRegular | 0o644, 20},
		{"etc/hosts2", ModeRegular | 0o644, 20},
		{"dev/null", ModeChar | 0o666, 0},
		{"bin/sh", ModeSymlink | 0o644, 0},
		{"home/u/f", ModeRegular | 0o4711, 1},
		{"home", ModeDir | 0o755, 0},
	}
	for _, c := range checks {
		in, ok := m.Lookup(c.path)
		if !ok {
			t.Errorf("%s: missing", c.path)
			continue
		}
		if in.Mode != c.mode || in.Size != c.size {
			t.Errorf("%s: mode %o size %d, want %o %d", c.path, in.Mode, in.Size, c.mode, c.size)
		}
	}
	if in, _ := m.Lookup("dev/null"); in.Rdev != 1<<8|3 {
		t.Errorf("dev/null rdev %x", in.Rdev)
	}
	if in, _ := m.Lookup("home/u/f"); in.UID != 1000 || in.GID != 100 {
		t.Errorf("owner %d:%d", in.UID, in.GID)
	}
	if in, _ := m.Lookup("bin/sh"); in.Target != "busybox" {
		t.Errorf("target %q", in.Target)
	}
}

// writeOCI writes an OCI image layout with the given layers.
func writeOCI(t testing.TB, layers ...[]byte) string {
	t.Helper()
	dir := t.TempDir()
	blob := func(b []byte) string {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		p := filepath.Join(dir, "blobs", "sha256", h)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + h
	}
	var ls []map[string]any
	for _, l := range layers {
		ls = append(ls, map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(l), "size": len(l)})
	}
	man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "layers": ls,
		"config": map[string]any{"digest": blob([]byte("{}"))}})
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{map[string]any{"digest": blob(man)}}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	return dir
}

func TestOCILayers(t *testing.T) {
	l1 := makeTar(t, true, reg("etc/a", "a1"), reg("etc/b", "b1"), reg("opt/x/old", "o"), reg("keep", "k"))
	l2 := makeTar(t, true, reg("etc/a", "a2"), reg("etc/.wh.b", ""), reg("opt/x/.wh..wh..opq", ""), reg("opt/x/new", "n"))
	dir := writeOCI(t, l1, l2)
	store, _ := NewDirStore(t.TempDir())
	m := buildSource(t, store, dir)
	for path, want := range map[string]bool{"etc/a": true, "etc/b": false, "opt/x/old": false, "opt/x/new": true, "keep": true} {
		if _, ok := m.Lookup(path); ok != want {
			t.Errorf("%s: present %v, want %v", path, ok, want)
		}
	}
	a, _ := m.Lookup("etc/a")
	if a.Size != 2 {
		t.Errorf("etc/a size %d", a.Size)
	}
	plain, err := OpenBlock(a.Blocks[0], mustGet(t, store, a.Blocks[0]))
	if err != nil || string(plain) != "a2" {
		t.Errorf("etc/a = %q (%v), want the upper layer's", plain, err)
	}
}

func TestDockerSave(t *testing.T) {
	l1 := makeTar(t, false, reg("bin/tool", "v1"), reg("etc/conf", "c"))
	l2 := makeTar(t, false, reg("bin/tool", "v2"), reg("etc/.wh.conf", ""))
	man, _ := json.Marshal([]map[string]any{{"Config": "c.json", "RepoTags": []string{"x:latest"}, "Layers": []string{"l1/layer.tar", "l2/layer.tar"}}})
	arch := makeTar(t, false,
		tarEntry{h: tar.Header{Name: "manifest.json", Typeflag: tar.TypeReg}, body: string(man)},
		tarEntry{h: tar.Header{Name: "l1/layer.tar", Typeflag: tar.TypeReg}, body: string(l1)},
		tarEntry{h: tar.Header{Name: "l2/layer.tar", Typeflag: tar.TypeReg}, body: string(l2)},
	)
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, arch, 0o644); err != nil {
		t.Fatal(err)
	}
	store, _ := NewDirStore(t.TempDir())
	m := buildSource(t, store, p)
	if _, ok := m.Lookup("etc/conf"); ok {
		t.Errorf("whiteout etc/conf still present")
	}
	tool, ok := m.Lookup("bin/tool")
	if !ok || tool.Size != 2 {
		t.Fatalf("bin/tool missing or wrong")
	}
}

func mustGet(t testing.TB, s Store, ref BlockRef) []byte {
	t.Helper()
	b, err := s.Get(context.Background(), ref.ID)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSharedBase: a second flist made of the same tree plus a few files
// stores only the new files' blocks; every block of the base is shared.
func TestSharedBase(t *testing.T) {
	src := busyboxTree(t)
	store, _ := NewDirStore(t.TempDir())
	_, base := buildDir(t, src, store)
	if err := os.WriteFile(filepath.Join(src, "etc/extra.conf"), []byte("more\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "usr/share/data/new.bin"), bytes.Repeat([]byte("n"), 700<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	_, derived := buildDir(t, src, store)
	bb, db := base.Blocks(), derived.Blocks()
	for id := range bb {
		if _, ok := db[id]; !ok {
			t.Errorf("block %x of the base not shared", id)
		}
	}
	if extra := len(db) - len(bb); extra != 3 { // extra.conf + 2 blocks of new.bin
		t.Errorf("derived has %d new blocks, want 3", extra)
	}
}

func TestMetaRejects(t *testing.T) {
	good := func() *Meta {
		return &Meta{Inodes: map[uint64]*Inode{
			1: {Ino: 1, Name: "/", Mode: ModeDir | 0o755},
			2: {Ino: 2, Parent: 1, Name: "a", Mode: ModeRegular | 0o644},
		}, Children: map[uint64][]uint64{1: {2}}, BlockSize: DefaultBlockSize}
	}
	tests := []struct {
		name string
		mod  func(m *Meta)
	}{
		{"no root", func(m *Meta) { delete(m.Inodes, 1) }},
		{"bad name", func(m *Meta) { m.Inodes[2].Name = ".." }},
		{"slash", func(m *Meta) { m.Inodes[2].Name = "a/b" }},
		// Fewer blocks than the size needs is read as rfs reads it
		// (TestRFSBlockCounts); more is never valid in memory.
		{"more blocks than the size needs", func(m *Meta) {
			m.Inodes[2].Size = 10
			m.Inodes[2].Blocks = make([]BlockRef, 2)
		}},
		{"unreachable", func(m *Meta) { m.Inodes[3] = &Inode{Ino: 3, Parent: 3, Name: "c", Mode: ModeDir} }},
		{"unknown type", func(m *Meta) { m.Inodes[2].Mode = 0o170000 }},
		{"symlink without target", func(m *Meta) { m.Inodes[2].Mode = ModeSymlink | 0o777 }},
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("good meta: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.mod(m)
			if err := m.Validate(); err == nil {
				t.Errorf("got no error")
			}
		})
	}
}

// hugeTar is a header claiming 1 TiB of content followed by five bytes.
func hugeTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 1 << 40, Mode: 0o644}); err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), "short"...)
}

// TestOCIArchive: an OCI layout packed in a tar (as skopeo and buildah write
// it) builds like the directory.
func TestOCIArchive(t *testing.T) {
	dir := writeOCI(t, makeTar(t, true, reg("etc/os-release", "ID=zos\n")))
	var entries []tarEntry
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		entries = append(entries, tarEntry{h: tar.Header{Name: "./" + rel, Typeflag: tar.TypeReg}, body: string(b)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "oci.tar")
	if err := os.WriteFile(p, makeTar(t, false, entries...), 0o644); err != nil {
		t.Fatal(err)
	}
	store, _ := NewDirStore(t.TempDir())
	m := buildSource(t, store, p)
	if in, ok := m.Lookup("etc/os-release"); !ok || in.Size != 7 {
		t.Errorf("etc/os-release missing or wrong: %+v", in)
	}
	// A manifest naming a layer outside the archive is refused.
	man := `[{"Layers": ["../../etc/passwd"]}]`
	bad := filepath.Join(t.TempDir(), "bad")
	_ = os.MkdirAll(bad, 0o755)
	_ = os.WriteFile(filepath.Join(bad, "index.json"), []byte(`{}`), 0o644)
	_ = os.WriteFile(filepath.Join(bad, "manifest.json"), []byte(man), 0o644)
	if err := AddSource(context.Background(), NewBuilder(BuildConfig{}, store, testutil.Logger(t)), bad); err == nil || !strings.Contains(err.Error(), `".."`) {
		t.Errorf("layer outside the image: got %v", err)
	}
}
