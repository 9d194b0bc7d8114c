package zdb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func val(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 10+i%50) }

func TestPersistence(t *testing.T) {
	tests := []struct {
		name   string
		mode   Mode
		damage func(t testing.TB, dir string) // applied while closed
	}{
		{name: "user clean", mode: ModeUser},
		{name: "seq clean", mode: ModeSeq},
		{name: "user no index", mode: ModeUser, damage: removeIndexes},
		{name: "seq no index", mode: ModeSeq, damage: removeIndexes},
		{name: "user index tail lost", mode: ModeUser, damage: chopIndex},
		{name: "user index garbage", mode: ModeUser, damage: garbleIndexTail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			small := func(c *Config) { c.Mode = tt.mode; c.MaxDataFileSize = 8192 }
			s := openStore(t, dir, small)
			ns := mustNS(t, s, DefaultNamespace)
			want := map[string][]byte{}
			for i := 0; i < 500; i++ {
				var key []byte
				if tt.mode == ModeUser {
					key = []byte(fmt.Sprintf("key-%d", i%300))
				} else if i >= 300 {
					key = seqKey(uint32(i % 300))
				}
				got, _, err := ns.set(key, val(i), 0)
				if err != nil {
					t.Fatalf("set %d: %v", i, err)
				}
				want[string(got)] = val(i)
			}
			for i := 0; i < 300; i += 7 {
				key := []byte(fmt.Sprintf("key-%d", i))
				if tt.mode == ModeSeq {
					key = seqKey(uint32(i))
				}
				if _, err := ns.del(key); err != nil {
					t.Fatalf("del: %v", err)
				}
				delete(want, string(key))
			}
			if len(ns.ids) < 3 {
				t.Fatalf("got %d data files, want rotation", len(ns.ids))
			}
			info := ns.info()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.damage != nil {
				tt.damage(t, dir)
			}
			s = openStore(t, dir, small)
			defer s.Close()
			ns = mustNS(t, s, DefaultNamespace)
			checkContent(t, ns, want)
			if got := ns.info(); got.Entries != info.Entries || got.DataSize != info.DataSize {
				t.Fatalf("got %d entries %d bytes, want %d %d", got.Entries, got.DataSize, info.Entries, info.DataSize)
			}
			// Still writable, and the next seq id follows the old ones.
			key, _, err := ns.set(nil, []byte("new"), 0)
			if tt.mode == ModeUser {
				key, _, err = ns.set([]byte("new"), []byte("new"), 0)
			}
			if err != nil {
				t.Fatalf("set after reopen: %v", err)
			}
			if tt.mode == ModeSeq && !bytes.Equal(key, seqKey(300)) {
				t.Fatalf("got next id %x, want %x", key, seqKey(300))
			}
		})
	}
}

func checkContent(t *testing.T, ns *namespace, want map[string][]byte) {
	t.Helper()
	if n := ns.keys.len(); n != len(want) {
		t.Fatalf("got %d keys, want %d", n, len(want))
	}
	for k, v := range want {
		got, err := ns.get([]byte(k), nil)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("key %q: got %q %v, want %q", k, got, err, v)
		}
	}
}

func files(t testing.TB, dir, kind string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*", DefaultNamespace, "zdb-"+kind+"-*"))
	slices.Sort(m)
	return m
}

func removeIndexes(t testing.TB, dir string) {
	for _, f := range files(t, dir, "index") {
		os.Remove(f)
	}
}

func chopIndex(t testing.TB, dir string) {
	f := files(t, dir, "index")
	last := f[len(f)-1]
	st, _ := os.Stat(last)
	os.Truncate(last, st.Size()-40)
}

func garbleIndexTail(t testing.TB, dir string) {
	f := files(t, dir, "index")
	p := f[len(f)-2]
	st, _ := os.Stat(p)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fh.WriteAt([]byte("garbage!"), st.Size()-60)
}

func TestTornTail(t *testing.T) {
	tests := []struct {
		name string
		cut  func(size int64) int64 // new size of the data file
		zero bool                   // zero the last payload instead
	}{
		{name: "cut in payload", cut: func(s int64) int64 { return s - 5 }},
		{name: "cut in header", cut: func(s int64) int64 { return s - 1000 + 10 }},
		{name: "unwritten payload", zero: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, nil)
			ns := mustNS(t, s, DefaultNamespace)
			for i, k := range []string{"a", "b", "c"} {
				if _, _, err := ns.set([]byte(k), bytes.Repeat([]byte{byte('0' + i)}, 1000-dataEntryFixed-1), 0); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
			data := files(t, dir, "data")[0]
			st, _ := os.Stat(data)
			if tt.zero {
				f, _ := os.OpenFile(data, os.O_RDWR, 0)
				f.WriteAt(make([]byte, 500), st.Size()-500)
				f.Close()
			} else {
				os.Truncate(data, tt.cut(st.Size()))
			}
			s = openStore(t, dir, nil)
			ns = mustNS(t, s, DefaultNamespace)
			want := map[string][]byte{
				"a": bytes.Repeat([]byte{'0'}, 973),
				"b": bytes.Repeat([]byte{'1'}, 973),
			}
			checkContent(t, ns, want)
			if st2, _ := os.Stat(data); st2.Size() != st.Size()-1000 {
				t.Fatalf("data file is %d bytes, want the torn entry truncated to %d", st2.Size(), st.Size()-1000)
			}
			if _, _, err := ns.set([]byte("d"), []byte("dd"), 0); err != nil {
				t.Fatal(err)
			}
			want["d"] = []byte("dd")
			s.Close()
			s = openStore(t, dir, nil)
			defer s.Close()
			checkContent(t, mustNS(t, s, DefaultNamespace), want)
		})
	}
}

func TestNamespaceRules(t *testing.T) {
	s := openStore(t, t.TempDir(), nil)
	defer s.Close()
	if err := s.NamespaceCreate("162-132880-myzdb", NamespaceOptions{MaxSize: 100, Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	if err := s.NamespaceCreate("worm", NamespaceOptions{Public: true}); err != nil {
		t.Fatal(err)
	}
	ns := mustNS(t, s, "162-132880-myzdb")
	w := mustNS(t, s, "worm")
	if err := w.update(func(st *nsSettings) error { st.Worm = true; return nil }); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   func() error
		want error
	}{
		{"fill", func() error { _, _, err := ns.set([]byte("a"), make([]byte, 60), 0); return err }, nil},
		{"full", func() error { _, _, err := ns.set([]byte("b"), make([]byte, 41), 0); return err }, ErrNamespaceFull},
		{"exactly full", func() error { _, _, err := ns.set([]byte("b"), make([]byte, 40), 0); return err }, nil},
		{"overwrite smaller", func() error { _, _, err := ns.set([]byte("a"), make([]byte, 10), 1); return err }, nil},
		{"key too large", func() error { _, _, err := ns.set(make([]byte, 256), nil, 0); return err }, ErrKeyTooLarge},
		{"empty key", func() error { _, _, err := ns.set(nil, []byte("x"), 0); return err }, ErrKeyNeeded},
		{"del missing", func() error { _, err := ns.del([]byte("zz")); return err }, ErrKeyNotFound},
		{"worm first", func() error { _, _, err := w.set([]byte("k"), []byte("1"), 0); return err }, nil},
		{"worm overwrite", func() error { _, _, err := w.set([]byte("k"), []byte("2"), 0); return err }, ErrWorm},
		{"worm delete", func() error { _, err := w.del([]byte("k")); return err }, ErrWorm},
		{"mode change", func() error {
			return s.NamespaceUpdate("worm", NamespaceOptions{Mode: "seq"})
		}, ErrModeChange},
		{"duplicate", func() error { return s.NamespaceCreate("worm", NamespaceOptions{}) }, ErrNamespaceExists},
		{"bad name", func() error { return s.NamespaceCreate("../x", NamespaceOptions{}) }, ErrBadName},
		{"delete default", func() error { return s.NamespaceDelete(DefaultNamespace) }, ErrDefaultNS},
		{"info missing", func() error { _, err := s.Namespace("nope"); return err }, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.op(); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	info, err := s.Namespace("162-132880-myzdb")
	if err != nil {
		t.Fatal(err)
	}
	if info.DataSize != 50 || info.Entries != 2 || !info.HasPassword || info.Public || info.MaxSize != 100 {
		t.Fatalf("got %+v", info)
	}
	if err := s.NamespaceUpdate("162-132880-myzdb", NamespaceOptions{MaxSize: 1000, Public: true}); err != nil {
		t.Fatal(err)
	}
	if info, _ = s.Namespace("162-132880-myzdb"); info.HasPassword || !info.Public || info.MaxSize != 1000 {
		t.Fatalf("after update got %+v", info)
	}
	if err := s.NamespaceDelete("worm"); err != nil {
		t.Fatal(err)
	}
	list, _ := s.Namespaces()
	if len(list) != 2 || list[0].Name != "162-132880-myzdb" || list[1].Name != DefaultNamespace {
		t.Fatalf("got %+v", list)
	}
}

func TestHistoryScanCompact(t *testing.T) {
	dir := t.TempDir()
	small := func(c *Config) { c.MaxDataFileSize = 4096 }
	s := openStore(t, dir, small)
	ns := mustNS(t, s, DefaultNamespace)
	for i := 0; i < 3; i++ {
		ns.set([]byte("h"), []byte(fmt.Sprint("v", i)), uint32(100+i))
	}
	// History walks back through the versions.
	var cursor []byte
	for i := 2; i >= 0; i-- {
		prev, e, err := ns.history([]byte("h"), cursor)
		if err != nil || string(e.payload) != fmt.Sprint("v", i) || e.ts != uint32(100+i) {
			t.Fatalf("history %d: got %q %d %v", i, e.payload, e.ts, err)
		}
		if (prev == nil) != (i == 0) {
			t.Fatalf("history %d: prev %x", i, prev)
		}
		cursor = prev
	}
	want := map[string][]byte{"h": []byte("v2")}
	for i := 0; i < 200; i++ {
		k := fmt.Sprint("k", i%120)
		ns.set([]byte(k), val(i), 0)
		want[k] = val(i)
	}
	for i := 0; i < 120; i += 3 {
		k := fmt.Sprint("k", i)
		ns.del([]byte(k))
		delete(want, k)
	}
	scanAll := func(forward bool) []string {
		var keys []string
		var cur []byte
		for {
			entries, next, err := ns.scan(cur, forward, 7)
			if errors.Is(err, ErrNoMoreData) {
				return keys
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				keys = append(keys, string(e.Key))
			}
			cur = next
		}
	}
	fw, bw := scanAll(true), scanAll(false)
	slices.Reverse(bw)
	if len(fw) != len(want) || !slices.Equal(fw, bw) {
		t.Fatalf("scan: got %d forward, %d backward, want %d", len(fw), len(bw), len(want))
	}
	if _, _, err := ns.scan([]byte("bad"), true, 1); !errors.Is(err, ErrInvalidCursor) {
		t.Fatalf("bad cursor: got %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := Compact(Config{DataDir: dir + "/data", IndexDir: dir + "/index", MaxDataFileSize: 4096}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Entries != len(want) || st.BytesAfter >= st.BytesBefore {
		t.Fatalf("compact: got %+v, want %d entries and fewer bytes", st, len(want))
	}
	s = openStore(t, dir, small)
	defer s.Close()
	checkContent(t, mustNS(t, s, DefaultNamespace), want)
}
