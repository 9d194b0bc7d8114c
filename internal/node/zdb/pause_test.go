package zdb

import (
	"errors"
	"testing"
)

// TestNamespacePause: a paused namespace refuses every write with a clear
// error while its data stays readable, stays paused across a restart, and
// takes writes again once resumed, with nothing lost.
func TestNamespacePause(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, nil)
	if err := s.NamespaceCreate("1-2-db", NamespaceOptions{Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	addr, _ := startServer(t, ServerConfig{}, s)
	c := dial(t, addr)
	c.expect("+OK", "SELECT", "1-2-db", "pw")
	c.expect(`"k"`, "SET", "k", "v1")
	c.expect(`"gone"`, "SET", "gone", "x")

	if err := s.NamespacePause("1-2-db", true); err != nil {
		t.Fatal(err)
	}
	if err := s.NamespacePause("1-2-db", true); err != nil {
		t.Fatalf("pausing again: %v", err)
	}
	const refused = "-Namespace is paused: its contract is in its grace period, writes resume when it is paid"
	c.expect(refused, "SET", "k", "v2")
	c.expect(refused, "SET", "new", "v")
	c.expect(refused, "DEL", "gone")
	c.expect(refused, "FLUSH")
	c.expect(`"v1"`, "GET", "k")
	c.expect(`"x"`, "GET", "gone")
	if info, err := s.Namespace("1-2-db"); err != nil || !info.Paused || info.Entries != 2 {
		t.Fatalf("got %+v, %v, want paused with 2 entries", info, err)
	}
	if err := s.NamespacePause("nope", true); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pausing a missing namespace: got %v, want ErrNotFound", err)
	}

	// A restart keeps it paused.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, nil)
	defer s.Close()
	ns := mustNS(t, s, "1-2-db")
	if _, _, err := ns.set([]byte("k"), []byte("v3"), 0); !errors.Is(err, ErrPaused) {
		t.Fatalf("write after a restart: got %v, want ErrPaused", err)
	}

	if err := s.NamespacePause("1-2-db", false); err != nil {
		t.Fatal(err)
	}
	addr, _ = startServer(t, ServerConfig{}, s)
	c = dial(t, addr)
	c.expect("+OK", "SELECT", "1-2-db", "pw")
	c.expect(`"v1"`, "GET", "k")
	c.expect(`"k"`, "SET", "k", "v2")
	c.expect(`"v2"`, "GET", "k")
	c.expect("+OK", "DEL", "gone")
}
