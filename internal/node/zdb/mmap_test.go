package zdb

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestMappedReads: values written after a segment was mapped, in later
// segments (small files rotate often) and after a restart read back as
// written, and every read after the first went through a mapping.
func TestMappedReads(t *testing.T) {
	dir := t.TempDir()
	small := func(c *Config) { c.MaxDataFileSize = 8 << 10 }
	s := openStore(t, dir, small)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})
	ns := mustNS(t, s, DefaultNamespace)
	value := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 100+i*37%2000) }
	for i := 0; i < 200; i++ {
		if _, _, err := ns.set([]byte(fmt.Sprint("k", i)), value(i), 0); err != nil {
			t.Fatal(err)
		}
		// Read back at once: the current segment is mapped before the
		// next appends land in it.
		got, err := ns.get([]byte(fmt.Sprint("k", i)), nil)
		if err != nil || !bytes.Equal(got, value(i)) {
			t.Fatalf("k%d right after SET: got %d bytes, %v; want %d bytes", i, len(got), err, len(value(i)))
		}
	}
	check := func(ns *namespace, when string) {
		t.Helper()
		for i := 0; i < 200; i++ {
			got, err := ns.get([]byte(fmt.Sprint("k", i)), nil)
			if err != nil || !bytes.Equal(got, value(i)) {
				t.Fatalf("k%d %s: got %d bytes, %v; want %d bytes", i, when, len(got), err, len(value(i)))
			}
		}
		ns.mu.RLock()
		defer ns.mu.RUnlock()
		if len(ns.segs) < 10 {
			t.Fatalf("%s: got %d segments, want the small files to rotate", when, len(ns.segs))
		}
		for id, seg := range ns.segs {
			if seg.mm.b == nil {
				t.Errorf("%s: segment %d not mapped after reads", when, id)
			}
		}
	}
	check(ns, "after all SETs")
	closed = true
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, dir, small)
	t.Cleanup(func() { s2.Close() })
	check(mustNS(t, s2, DefaultNamespace), "after a restart")
}

// TestMappedReadFault: a data file cut short behind the server's back makes
// the mapped read fault; GET reports an error instead of crashing, and the
// namespace keeps serving what is still there.
func TestMappedReadFault(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	t.Cleanup(func() { s.Close() })
	ns := mustNS(t, s, DefaultNamespace)
	// Far apart so that a different page holds each.
	if _, _, err := ns.set([]byte("first"), bytes.Repeat([]byte("a"), 1024), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ns.set([]byte("pad"), bytes.Repeat([]byte("p"), 64<<10), 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ns.set([]byte("last"), bytes.Repeat([]byte("z"), 1024), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := ns.get([]byte("last"), nil); err != nil {
		t.Fatal(err) // maps the segment
	}
	if err := os.Truncate(filepath.Join(dir, "data", DefaultNamespace, segName("data", 1)), 8<<10); err != nil {
		t.Fatal(err)
	}
	got, err := ns.get([]byte("last"), nil)
	if err == nil || errors.Is(err, ErrKeyNotFound) {
		t.Fatalf("GET of a value cut off the file: got %d bytes, %v; want a read error", len(got), err)
	}
	got, err = ns.get([]byte("first"), nil)
	if err != nil || !bytes.Equal(got, bytes.Repeat([]byte("a"), 1024)) {
		t.Fatalf("GET of a value still in the file: got %d bytes, %v", len(got), err)
	}
}
