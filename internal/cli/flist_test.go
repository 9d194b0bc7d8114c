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
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// TestFlistCommands builds a small tree into a directory store and into a
// hub whose uploads are checked against the grid's twin keys, pushes,
// lists and inspects.
func TestFlistCommands(t *testing.T) {
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
	h, err := hub.New(hub.Config{Dir: t.TempDir()}, registry.NewClient(nc, key), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Handler())
	defer srv.Close()

	src := t.TempDir()
	for p, body := range map[string]string{"etc/hosts": "127.0.0.1 localhost\n", "bin/tool": strings.Repeat("tool", 50000)} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("tool", filepath.Join(src, "bin/alias")); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	a, b := filepath.Join(work, "a.fl"), filepath.Join(work, "b.fl")
	dirStore := "dir://" + filepath.Join(work, "store")

	out := mustRun(t, home, "flist", "build", src, "-o", a, "--store", dirStore)
	if !strings.Contains(out, "entries") {
		t.Errorf("build output %q", out)
	}
	out = mustRun(t, home, "flist", "build", src, "-o", b, "--store", srv.URL, "--grid", grid)
	if !strings.Contains(out, "b.fl") {
		t.Errorf("build to hub output %q", out)
	}
	out = mustRun(t, home, "flist", "inspect", b, "--dedup", a, "--tree")
	for _, want := range []string{"/bin/alias -> tool", "2 files", "shared:    2 of 2 blocks (100.0%)"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	out = mustRun(t, home, "flist", "push", a, "--hub", srv.URL, "--grid", grid, "--blocks-from", dirStore, "--tag", "latest")
	if !strings.Contains(out, "tag twin") {
		t.Errorf("push output %q", out)
	}
	out = mustRun(t, home, "flist", "ls", "--hub", srv.URL)
	if strings.TrimSpace(out) != "twin"+itoa(uint64(twin)) {
		t.Errorf("ls output %q", out)
	}
	out = mustRun(t, home, "flist", "ls", "twin"+itoa(uint64(twin)), "--hub", srv.URL)
	if !strings.Contains(out, "a.fl") || !strings.Contains(out, "latest") {
		t.Errorf("ls repo output %q", out)
	}
	if _, errs, code := run(t, home, "flist", "build", "/nonexistent", "-o", a, "--store", dirStore); code == 0 || !strings.Contains(errs, "nonexistent") {
		t.Errorf("build of a missing source: exit %d, %q", code, errs)
	}
	if _, _, code := run(t, home, "flist", "inspect", filepath.Join(src, "etc/hosts")); code == 0 {
		t.Errorf("inspect of a non-flist succeeded")
	}
}
