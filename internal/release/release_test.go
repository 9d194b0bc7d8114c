package release

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/flist/hub"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/testutil"
)

// grid is a real hub over HTTP where twin 1 is a release manager and twin 2
// is not.
type grid struct {
	url     string
	dir     string // the hub's data directory
	manager flist.Signer
	other   flist.Signer
}

func newGrid(t *testing.T) *grid {
	t.Helper()
	k1, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k2, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	h, err := hub.New(hub.Config{Dir: dir, ReleaseTwins: []uint32{1}},
		testutil.TwinKeys{1: k1.Public(), 2: k2.Public()}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	t.Cleanup(srv.Close)
	return &grid{url: srv.URL, dir: dir, manager: flist.KeySigner{Twin: 1, Key: k1}, other: flist.KeySigner{Twin: 2, Key: k2}}
}

func (g *grid) publish(t *testing.T, r *Repo) {
	t.Helper()
	if _, err := r.Publish(context.Background(), flist.NewHubClient(g.url, g.manager)); err != nil {
		t.Fatal(err)
	}
}

func (g *grid) metaFile(name string) string {
	return filepath.Join(g.dir, "release", "metadata", name)
}

// artifacts writes files named after their contents' release.
func artifacts(t *testing.T, version string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, name := range []string{"zos", "vminit"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name+" "+version), 0o755); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	return out
}

// release adds and signs channel/version in r.
func release(t *testing.T, r *Repo, channel, version string) {
	t.Helper()
	if err := r.Add(channel, version, artifacts(t, version)); err != nil {
		t.Fatal(err)
	}
	if have, want, err := r.Sign(); err != nil || have < want {
		t.Fatalf("sign: %d of %d signatures, %v", have, want, err)
	}
}

func newRepo(t *testing.T, cfg Config) *Repo {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), InitOptions{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (g *grid) client(t *testing.T, r *Repo, dir string) (*Client, error) {
	t.Helper()
	root, err := r.Root()
	if err != nil {
		t.Fatal(err)
	}
	return Refresh(ClientConfig{Hub: g.url, Root: root, Dir: dir})
}

// tree lists the files under dir with their hashes: what "changes nothing"
// compares.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, _ := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, fmt.Sprintf("%s %x", rel, sha256.Sum256(b)))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestPublishAndUpdate: a release manager publishes testing v1.0.0 to the
// hub, a node client finds and downloads it verified, then finds v1.1.0
// once that is published; production stays empty.
func TestPublishAndUpdate(t *testing.T) {
	g := newGrid(t)
	r := newRepo(t, Config{})
	release(t, r, "testing", "v1.0.0")
	g.publish(t, r)

	node := t.TempDir()
	c, err := g.client(t, r, node)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := c.Latest("testing")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Version != "v1.0.0" || len(rel.Artifacts) != 2 || rel.Artifacts[0].Name != "vminit" || rel.Artifacts[1].Name != "zos" {
		t.Fatalf("got %+v, want v1.0.0 with vminit and zos", rel)
	}
	data, err := c.Fetch(rel.Artifacts[1])
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "zos v1.0.0" {
		t.Fatalf("got %q, want %q", data, "zos v1.0.0")
	}
	if _, err := c.Latest("production"); !errors.Is(err, ErrNoRelease) {
		t.Fatalf("production: got %v, want ErrNoRelease", err)
	}

	release(t, r, "testing", "v1.1.0")
	g.publish(t, r)
	c, err = g.client(t, r, node)
	if err != nil {
		t.Fatal(err)
	}
	rel, err = c.Latest("testing")
	if err != nil || rel.Version != "v1.1.0" {
		t.Fatalf("got %q, %v, want v1.1.0", rel.Version, err)
	}
	if got := len(c.Releases("testing")); got != 2 {
		t.Fatalf("got %d releases, want 2", got)
	}
}

// TestPublishRefused: an unsigned release is not sent, a twin that is no
// release manager is turned away by the hub, and a published artifact
// version cannot be replaced.
func TestPublishRefused(t *testing.T) {
	g := newGrid(t)
	r := newRepo(t, Config{})
	if err := r.Add("testing", "v1", artifacts(t, "v1")); err != nil {
		t.Fatal(err)
	}
	_, err := r.Publish(context.Background(), flist.NewHubClient(g.url, g.manager))
	if !errors.Is(err, ErrThreshold) {
		t.Fatalf("unsigned: got %v, want ErrThreshold", err)
	}
	if got := tree(t, filepath.Join(g.dir, "release")); got != "" {
		t.Fatalf("unsigned: the hub holds %q, want nothing", got)
	}
	if _, _, err := r.Sign(); err != nil {
		t.Fatal(err)
	}
	_, err = r.Publish(context.Background(), flist.NewHubClient(g.url, g.other))
	if err == nil || !strings.Contains(err.Error(), "may not publish") {
		t.Fatalf("twin 2: got %v, want a refusal", err)
	}
	g.publish(t, r)
	if err := r.Add("testing", "v1", artifacts(t, "v1")); err == nil {
		t.Fatal("adding v1 again: got no error")
	}
}

// TestThreshold: targets needing 2 of 2 keys is not publishable with one.
func TestThreshold(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := Init(dir, InitOptions{TargetsKeys: 2, TargetsThreshold: 2}, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add("testing", "v1", artifacts(t, "v1")); err != nil {
		t.Fatal(err)
	}
	have, want, err := r.Sign(filepath.Join(dir, "keys", "targets-1.key"))
	if err != nil || have != 1 || want != 2 {
		t.Fatalf("one key: got %d of %d, %v, want 1 of 2", have, want, err)
	}
	if err := r.Verify(); !errors.Is(err, ErrThreshold) {
		t.Fatalf("one key: got %v, want ErrThreshold", err)
	}
	r, err = Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	have, want, err = r.Sign(filepath.Join(dir, "keys", "targets-2.key"))
	if err != nil || have != 2 || want != 2 {
		t.Fatalf("second key: got %d of %d, %v, want 2 of 2", have, want, err)
	}
	if err := r.Verify(); err != nil {
		t.Fatal(err)
	}
}

// TestClientRefuses: a node that trusts v1 is served bad metadata or
// artifacts by the hub (its disk tampered with): each is refused with its
// reason and the node's trusted state does not change.
func TestClientRefuses(t *testing.T) {
	tests := []struct {
		name   string
		attack func(t *testing.T, g *grid, r *Repo)
		fetch  bool // the attack is on the artifact: Refresh passes, Fetch fails
		want   string
	}{
		{name: "unsigned targets", want: "targets", attack: func(t *testing.T, g *grid, r *Repo) {
			release(t, r, "testing", "v2")
			g.publish(t, r) // snapshot and timestamp are genuine: the online keys are not the targets keys
			r.targets.ClearSignatures()
			writeMeta(t, g, fmt.Sprintf("%d.targets.json", r.targets.Signed.Version), r.targets)
		}},
		{name: "targets signed by an unknown key", want: "targets", attack: func(t *testing.T, g *grid, r *Repo) {
			release(t, r, "testing", "v2")
			g.publish(t, r) // snapshot and timestamp are genuine: the online keys are not the targets keys
			r.targets.ClearSignatures()
			_, priv, _ := ed25519.GenerateKey(nil)
			s, _ := signature.LoadSigner(priv, crypto.Hash(0))
			if _, err := r.targets.Sign(s); err != nil {
				t.Fatal(err)
			}
			writeMeta(t, g, fmt.Sprintf("%d.targets.json", r.targets.Signed.Version), r.targets)
		}},
		{name: "expired timestamp", want: "expired", attack: func(t *testing.T, g *grid, r *Repo) {
			r.cfg.Now = func() time.Time { return time.Now().Add(-48 * time.Hour) }
			if err := r.Refresh(); err != nil {
				t.Fatal(err)
			}
			writeMeta(t, g, "timestamp.json", r.timestamp)
		}},
		{name: "replayed older timestamp", want: "version", attack: func(t *testing.T, g *grid, r *Repo) {
			old, err := os.ReadFile(g.metaFile("timestamp.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(g.metaFile("timestamp.json"), old, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "tampered artifact", fetch: true, want: "hash", attack: func(t *testing.T, g *grid, r *Repo) {
			tf := r.targets.Signed.Targets["testing/v1/zos"]
			p := filepath.Join(g.dir, "release", "targets", "testing", "v1", fmt.Sprintf("%x.zos", []byte(tf.Hashes["sha256"])))
			if err := os.WriteFile(p, []byte("zos v9"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGrid(t)
			r := newRepo(t, Config{})
			release(t, r, "testing", "v1")
			g.publish(t, r)
			node := t.TempDir()
			c, err := g.client(t, r, node)
			if err != nil {
				t.Fatal(err)
			}
			old, _ := os.ReadFile(g.metaFile("timestamp.json"))
			if tt.name == "replayed older timestamp" {
				// The node sees a newer timestamp first, then the old one again.
				if err := r.Refresh(); err != nil {
					t.Fatal(err)
				}
				g.publish(t, r)
				if c, err = g.client(t, r, node); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(g.metaFile("timestamp.json"), old, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				tt.attack(t, g, r)
			}
			// What the node trusts to install is its targets; genuine newer
			// timestamp and snapshot may be remembered (TUF keeps them so they
			// cannot be rolled back), the targets never change on a refusal.
			before := tree(t, filepath.Join(node, "targets")) + trustedTargets(t, node)
			if tt.fetch {
				rel, err := c.Latest("testing")
				if err != nil {
					t.Fatal(err)
				}
				_, err = c.Fetch(rel.Artifacts[1])
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.want) {
					t.Fatalf("fetch: got %v, want an error about %q", err, tt.want)
				}
			} else {
				_, err := g.client(t, r, node)
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tt.want) {
					t.Fatalf("refresh: got %v, want an error about %q", err, tt.want)
				}
				t.Logf("refused: %v", err)
			}
			if after := tree(t, filepath.Join(node, "targets")) + trustedTargets(t, node); after != before {
				t.Fatalf("the node's trusted state changed:\n%s\nwant\n%s", after, before)
			}
		})
	}
}

// trustedTargets is the node's trusted targets metadata.
func trustedTargets(t *testing.T, node string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(node, "metadata", "targets.json"))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// writeMeta puts metadata straight into the hub's store, as an attacker on
// the hub's disk would.
func writeMeta[T metadata.Roles](t *testing.T, g *grid, name string, m *metadata.Metadata[T]) {
	t.Helper()
	b, err := m.ToBytes(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(g.metaFile(name)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.metaFile(name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"v1.0.0", "v1.0.0", 0},
		{"v1.2.0", "v1.10.0", -1},
		{"1.10", "v1.9", 1},
		{"v2", "v1.9.9", 1},
		{"v1.0", "v1.0.1", -1},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q): got %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// TestClientTornRoot: a trusted root.json cut short (a power loss while
// go-tuf wrote it) does not stop updates: the shipped root starts again,
// and the stored timestamp still refuses an older one.
func TestClientTornRoot(t *testing.T) {
	g := newGrid(t)
	r := newRepo(t, Config{})
	release(t, r, "testing", "v1")
	g.publish(t, r)
	node := t.TempDir()
	if _, err := g.client(t, r, node); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(node, "metadata", "root.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := g.client(t, r, node)
	if err != nil {
		t.Fatalf("torn root: got %v, want the shipped root used", err)
	}
	if rel, err := c.Latest("testing"); err != nil || rel.Version != "v1" {
		t.Fatalf("got %q, %v, want v1", rel.Version, err)
	}
}
