package node

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/testutil"
)

// layout is a cache, two pools and a data dir for one identity case.
type layout struct {
	cache, record string
	pools         []string
}

func newLayout(t *testing.T) layout {
	dir := t.TempDir()
	l := layout{cache: filepath.Join(dir, "cache"), record: filepath.Join(dir, pubName),
		pools: []string{filepath.Join(dir, "p1"), filepath.Join(dir, "p2")}}
	for _, p := range append([]string{l.cache}, l.pools...) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func mustKey(t *testing.T) identity.Key {
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func save(t *testing.T, path string, k identity.Key) {
	if err := identity.Save(path, k); err != nil {
		t.Fatal(err)
	}
}

func TestLoadIdentity(t *testing.T) {
	old, other := mustKey(t), mustKey(t)
	tests := []struct {
		name     string
		setup    func(t *testing.T, l layout)
		existing bool
		allowNew bool
		want     string // "old", "new" (a fresh key) or an error substring
	}{
		{"first start makes a key", func(*testing.T, layout) {}, false, false, "new"},
		{"key on the cache", func(t *testing.T, l layout) {
			save(t, filepath.Join(l.cache, "identity", seedName), old)
		}, true, false, "old"},
		{"cache lost, a pool restores it", func(t *testing.T, l layout) {
			save(t, filepath.Join(l.pools[1], seedName), old)
		}, true, false, "old"},
		{"cache and a pool disagree", func(t *testing.T, l layout) {
			save(t, filepath.Join(l.cache, "identity", seedName), old)
			save(t, filepath.Join(l.pools[1], seedName), other)
		}, true, false, "the cache holds key " + old.PublicHex() + " but pool"},
		{"two pools disagree", func(t *testing.T, l layout) {
			save(t, filepath.Join(l.pools[0], seedName), old)
			save(t, filepath.Join(l.pools[1], seedName), other)
		}, true, false, "pools carry different keys"},
		{"pools from before but no key anywhere", func(*testing.T, layout) {}, true, false, "refusing to register as a new node"},
		{"pools from before, no key, farmer allows a new one", func(*testing.T, layout) {}, true, true, "new"},
		{"every disk lost but the public key recorded", func(t *testing.T, l layout) {
			if err := os.WriteFile(l.record, []byte(old.PublicHex()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, false, false, "node key " + old.PublicHex() + " is lost"},
		{"key differs from the recorded one", func(t *testing.T, l layout) {
			save(t, filepath.Join(l.cache, "identity", seedName), other)
			if err := os.WriteFile(l.record, []byte(old.PublicHex()+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, false, "records " + old.PublicHex()},
		{"unreadable pool copy", func(t *testing.T, l layout) {
			if err := os.WriteFile(filepath.Join(l.pools[0], seedName), []byte("garbage"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true, false, "unreadable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLayout(t)
			tt.setup(t, l)
			k, err := loadIdentity(identitySources{Cache: l.cache, Pools: l.pools, Record: l.record,
				Existing: tt.existing, AllowNew: tt.allowNew}, testutil.Logger(t))
			switch tt.want {
			case "old", "new":
				if err != nil {
					t.Fatalf("got error %v, want the %s key", err, tt.want)
				}
				if (tt.want == "old") != (k.PublicHex() == old.PublicHex()) || k.PublicHex() == other.PublicHex() {
					t.Fatalf("got key %s, want the %s key (old %s)", k.PublicHex(), tt.want, old.PublicHex())
				}
			default:
				if !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got key %s, error %v; want ErrIdentity with %q", k.PublicHex(), err, tt.want)
				}
				return
			}
			// The key is now on the cache, every pool (0600) and recorded.
			for _, p := range []string{filepath.Join(l.cache, "identity", seedName), filepath.Join(l.pools[0], seedName), filepath.Join(l.pools[1], seedName)} {
				got, err := identity.Load(p)
				if err != nil || got.PublicHex() != k.PublicHex() {
					t.Errorf("%s: got %v, want the node key", p, err)
				}
				if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("%s: mode %v (%v), want 0600", p, st.Mode().Perm(), err)
				}
			}
			if b, err := os.ReadFile(l.record); err != nil || strings.TrimSpace(string(b)) != k.PublicHex() {
				t.Errorf("recorded public key: %q, %v; want %s", b, err, k.PublicHex())
			}
		})
	}
}
