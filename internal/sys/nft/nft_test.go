package nft

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

func TestDrop(t *testing.T) {
	got := Drop("inet", "zos-nr")
	want := "table inet zos-nr\ndelete table inet zos-nr\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// newNS makes a namespace of its own, removed at the end of the test.
func newNS(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "nft")
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := "zt-nft-" + hex.EncodeToString(b)
	if err := netns.Create(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(name) })
	return name
}

// TestRootTables loads, lists, replaces and drops a table in a namespace
// of its own; a bad ruleset loads nothing (nft -f is atomic), and a
// missing namespace is refused rather than falling back to the host's.
func TestRootTables(t *testing.T) {
	ns := newNS(t)
	var nft Tables
	const rs = "table inet zt {\n\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\ttcp dport 7 drop\n\t}\n}\n"
	if err := nft.Apply(ns, rs); err != nil {
		t.Fatal(err)
	}
	got, err := nft.List(ns)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"inet zt"}; !slices.Equal(got, want) {
		t.Errorf("tables: got %q, want %q", got, want)
	}
	out, err := nft.Table(ns, "inet", "zt")
	if err != nil || !strings.Contains(out, "tcp dport 7 drop") {
		t.Errorf("table: got %q (%v), want the rule", out, err)
	}

	// Atomic: the second line is invalid, so the new table does not appear.
	bad := "table inet zt2 { }\nthis is not nft\n"
	if err := nft.Apply(ns, bad); err == nil || !strings.Contains(err.Error(), "nft") {
		t.Errorf("bad ruleset: got %v, want an error naming nft", err)
	}
	if got, _ := nft.List(ns); !slices.Equal(got, []string{"inet zt"}) {
		t.Errorf("after a bad ruleset: got %q, want only inet zt", got)
	}
	if err := nft.Apply(ns, ""); err == nil {
		t.Error("empty ruleset: got no error")
	}

	for i := 0; i < 2; i++ { // dropping is idempotent
		if err := nft.Apply(ns, Drop("inet", "zt")); err != nil {
			t.Fatalf("drop %d: %v", i, err)
		}
	}
	if got, _ := nft.List(ns); len(got) != 0 {
		t.Errorf("after drop: got %q, want no table", got)
	}

	missing := ns + "-gone"
	if err := nft.Apply(missing, rs); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing namespace: got %v, want it refused", err)
	}
	if _, err := nft.List(missing); err == nil {
		t.Error("listing a missing namespace: got no error")
	}
}
