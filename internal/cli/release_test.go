package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/flist/hub"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/release"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// TestReleaseCommands: a release manager (a twin the hub lists as release
// twin) makes, signs and publishes a release with zosctl; a node client
// then verifies and downloads it. Publishing unsigned is refused.
func TestReleaseCommands(t *testing.T) {
	grid := startGrid(t)
	home, twin := newHome(t, grid)
	key, err := identity.Load(filepath.Join(home, "key.json"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := rmb.Connect(grid, key)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	h, err := hub.New(hub.Config{Dir: t.TempDir(), ReleaseTwins: []uint32{twin}}, registry.NewClient(nc, key), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()

	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	zos := filepath.Join(work, "zos")
	if err := os.WriteFile(zos, []byte("zos v1.0.0"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, home, "release", "init", repo)
	if !strings.Contains(out, "root.json") {
		t.Errorf("init output %q", out)
	}
	mustRun(t, home, "release", "add", repo, "--channel", "testing", "--version", "v1.0.0", "zos="+zos)
	if _, errs, code := run(t, home, "release", "publish", repo, "--hub", srv.URL, "--grid", grid); code == 0 || !strings.Contains(errs, "sign") {
		t.Errorf("publishing unsigned: exit %d, %q, want a refusal naming sign", code, errs)
	}
	out = mustRun(t, home, "release", "sign", repo)
	if !strings.Contains(out, "1 of 1") {
		t.Errorf("sign output %q", out)
	}
	out = mustRun(t, home, "release", "publish", repo, "--hub", srv.URL, "--grid", grid)
	if !strings.Contains(out, "published 1 artifacts") {
		t.Errorf("publish output %q", out)
	}
	root, err := os.ReadFile(filepath.Join(repo, "root.json"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := release.Refresh(release.ClientConfig{Hub: srv.URL, Root: root, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rel, err := c.Latest("testing")
	if err != nil || rel.Version != "v1.0.0" {
		t.Fatalf("got %+v, %v, want v1.0.0", rel, err)
	}
	data, err := c.Fetch(rel.Artifacts[0])
	if err != nil || string(data) != "zos v1.0.0" {
		t.Fatalf("got %q, %v, want the artifact", data, err)
	}
	if _, errs, code := run(t, home, "release", "add", repo, "--channel", "testing", "--version", "v1.0.0", "zos="+zos); code == 0 || !strings.Contains(errs, "released already") {
		t.Errorf("adding a release again: exit %d, %q", code, errs)
	}

	// Staged, then paused: what nodes see changes only once signed and published.
	mustRun(t, home, "release", "rollout", repo, "--channel", "testing", "--version", "v1.0.0", "--farms", "5", "--percent", "10", "--pause")
	mustRun(t, home, "release", "sign", repo)
	mustRun(t, home, "release", "publish", repo, "--hub", srv.URL, "--grid", grid)
	c, err = release.Refresh(release.ClientConfig{Hub: srv.URL, Root: root, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rel, err = c.Latest("testing")
	if err != nil || rel.Rollout == nil || !rel.Rollout.Paused || rel.Rollout.Percent != 10 || len(rel.Rollout.Farms) != 1 || rel.Rollout.Farms[0] != 5 {
		t.Fatalf("got rollout %+v, %v, want farm 5, 10%%, paused", rel.Rollout, err)
	}
	if _, errs, code := run(t, home, "release", "rollout", repo, "--channel", "testing", "--version", "v1.0.0", "--farms", "x"); code == 0 || !strings.Contains(errs, "bad farm") {
		t.Errorf("bad farm id: exit %d, %q", code, errs)
	}
}
