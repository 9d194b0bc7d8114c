package flistd

import (
	"context"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/sys/daemon"
	"github.com/zos-go/zos/internal/sys/mount"
	"github.com/zos-go/zos/internal/testutil"
)

// tree describes files to build a flist from: path -> content; a content
// starting with "->" makes a symlink to the rest.
type tree map[string]string

// buildFlist builds tr into a flist on a hub of its own (newHub) and
// returns its URL, the only kind of flist the module takes.
func buildFlist(t testing.TB, tr tree) string {
	t.Helper()
	return newHub(t).build(t, "test.fl", tr)
}

// writeTree writes tr under a new directory and returns it.
func writeTree(t testing.TB, tr tree) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	for p, c := range tr {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(c, "->"); ok {
			err = os.Symlink(target, full)
		} else if strings.HasSuffix(p, "/") {
			err = os.MkdirAll(full, 0o755)
		} else {
			err = os.WriteFile(full, []byte(c), 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	return src
}

// routedStore keeps blocks in a directory but names itself by the URL
// its blocks are served at, which the flist records as its route.
type routedStore struct {
	*flist.DirStore
	url string
}

func (s routedStore) URL() string { return s.url }

// buildMeta builds tr into flist metadata whose blocks go to store.
func buildMeta(t testing.TB, tr tree, store flist.Store) *flist.Meta {
	t.Helper()
	b := flist.NewBuilder(flist.BuildConfig{}, store, testutil.Logger(t))
	if err := flist.AddSource(context.Background(), b, writeTree(t, tr)); err != nil {
		t.Fatalf("building flist: %v", err)
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// writeMeta writes m as a .fl file and returns its bytes.
func writeMeta(t testing.TB, m *flist.Meta) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "test.fl")
	if err := flist.Write(context.Background(), out, m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// hub serves flists under /repo/NAME and their blocks under
// /api/v1/blocks/ID, as zgrid --hub does, counting requests per path.
type hub struct {
	*httptest.Server
	blocks *flist.DirStore
	mu     sync.Mutex // guards files
	files  map[string][]byte
	hits   sync.Map // path -> *atomic.Int64
}

func newHub(t testing.TB) *hub {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return newHubOn(t, ln)
}

// newHubOn serves the hub on ln.
func newHubOn(t testing.TB, ln net.Listener) *hub {
	t.Helper()
	blocks, err := flist.NewDirStore(filepath.Join(t.TempDir(), "blocks"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hub{files: map[string][]byte{}, blocks: blocks}
	h.Server = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := h.hits.LoadOrStore(r.URL.Path, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		if id, ok := strings.CutPrefix(r.URL.Path, "/api/v1/blocks/"); ok {
			var key [flist.HashSize]byte
			if b, err := hex.DecodeString(id); err == nil && len(b) == len(key) {
				copy(key[:], b)
				if data, err := h.blocks.Get(r.Context(), key); err == nil {
					w.Write(data)
					return
				}
			}
			http.NotFound(w, r)
			return
		}
		h.mu.Lock()
		data, ok := h.files[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	})}}
	h.Start()
	t.Cleanup(h.Close)
	return h
}

// build builds tr into a flist whose blocks this hub serves, publishes it
// as name and returns its URL.
func (h *hub) build(t testing.TB, name string, tr tree) string {
	t.Helper()
	m := buildMeta(t, tr, routedStore{h.blocks, h.URL})
	return h.put(t, name, writeMeta(t, m))
}

// put publishes raw bytes as name and returns its URL.
func (h *hub) put(t testing.TB, name string, data []byte) string {
	h.mu.Lock()
	h.files["/repo/"+name] = data
	h.mu.Unlock()
	return h.URL + "/repo/" + name
}

// file returns what is published as name.
func (h *hub) file(name string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.files["/repo/"+name]
}

func (h *hub) count(name string) int64 {
	n, ok := h.hits.Load("/repo/" + name)
	if !ok {
		return 0
	}
	return n.(*atomic.Int64).Load()
}

var (
	zosOnce sync.Once
	zosBin  string
	zosErr  string
)

// zosBinary returns a zos executable: $ZOS_TEST_BINARY, or cmd/zos built
// once for the whole test run.
func zosBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("ZOS_TEST_BINARY"); p != "" {
		return p
	}
	zosOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flistd-zos-")
		if err != nil {
			zosErr = err.Error()
			return
		}
		zosBin = filepath.Join(dir, "zos")
		out, err := exec.Command("go", "build", "-o", zosBin, "github.com/zos-go/zos/cmd/zos").CombinedOutput()
		if err != nil {
			zosErr = err.Error() + ": " + string(out)
		}
	})
	if zosErr != "" {
		t.Fatalf("building zos: %s", zosErr)
	}
	return zosBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if zosBin != "" {
		os.RemoveAll(filepath.Dir(zosBin))
	}
	os.Exit(code)
}

// requireFUSE skips unless the test can mount FUSE and overlays.
func requireFUSE(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireFile(t, "/dev/fuse")
}

// newRoot makes a module root whose daemons and mounts are all gone when the
// test ends, even when it fails: overlays under the test's directories are
// unmounted, daemons stopped, read-only mounts detached, and the mount
// table is checked for leftovers.
func newRoot(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "flist")
	t.Cleanup(func() {
		var mnt mount.Mounter
		table, err := mnt.Table()
		if err != nil {
			t.Error(err)
			return
		}
		// Overlays first (they hold the read-only mounts), newest first.
		for i := len(table) - 1; i >= 0; i-- {
			if e := table[i]; strings.HasPrefix(e.Mountpoint, base+"/") && e.FSType == "overlay" {
				if err := mnt.Unmount(e.Mountpoint); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
		pids, _ := filepath.Glob(filepath.Join(root, dirRun, "*.pid"))
		for _, p := range pids {
			hash := strings.TrimSuffix(filepath.Base(p), ".pid")
			pid := readPidFile(p)
			if err := daemon.Stop(pid, 5*time.Second, marks(filepath.Join(root, dirMounts, hash))...); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		table, _ = mnt.Table()
		for i := len(table) - 1; i >= 0; i-- {
			if e := table[i]; strings.HasPrefix(e.Mountpoint, base+"/") {
				if err := mnt.Detach(e.Mountpoint); err != nil {
					t.Errorf("cleanup: %v", err)
				}
			}
		}
		table, _ = mnt.Table()
		for _, e := range table {
			if strings.HasPrefix(e.Mountpoint, base+"/") {
				t.Errorf("mount left after cleanup: %+v", e)
			}
		}
	})
	return root
}

func readPidFile(p string) int {
	s, _ := readSmall(p)
	pid, _ := strconv.Atoi(s)
	return pid
}

// loopback lets a module reach the tests' hubs on 127.0.0.1, as the
// tests' nodes are configured (--egress-allow loopback).
var loopback = func() []netip.Prefix {
	p, err := egress.ParseAllow([]string{"loopback"})
	if err != nil {
		panic(err)
	}
	return p
}()

// newModule makes a module over root; without cfg.Egress its policy
// allows loopback.
func newModule(t testing.TB, root string, cfg Config) *Module {
	t.Helper()
	cfg.Root = root
	if cfg.Egress == nil {
		cfg.Egress = &egress.Policy{Allow: loopback}
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(filepath.Dir(root), "cache")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = 64 << 20
	}
	m, err := New(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// mountsUnder returns the mount table entries below dir.
func mountsUnder(t testing.TB, dir string) []mount.Entry {
	t.Helper()
	table, err := mount.Mounter{}.Table()
	if err != nil {
		t.Fatal(err)
	}
	var out []mount.Entry
	for _, e := range table {
		if strings.HasPrefix(e.Mountpoint, dir+"/") {
			out = append(out, e)
		}
	}
	return out
}

func mustRead(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
