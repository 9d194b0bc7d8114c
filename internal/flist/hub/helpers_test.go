package hub

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/testutil"
)

// testTwins are twins 1, 2, 3, 7 and 9 with their keys.
type testTwins map[uint32]identity.Key

func newTwins(t testing.TB) testTwins {
	t.Helper()
	tw := testTwins{}
	for _, id := range []uint32{1, 2, 3, 7, 9} {
		k, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		tw[id] = k
	}
	return tw
}

func (tw testTwins) keys() testutil.TwinKeys {
	out := testutil.TwinKeys{}
	for id, k := range tw {
		out[id] = k.Public()
	}
	return out
}

func (tw testTwins) signer(id uint32) flist.KeySigner { return flist.KeySigner{Twin: id, Key: tw[id]} }

func newTestHub(t testing.TB, cfg Config, tw testTwins) *Hub {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	h, err := New(cfg, tw.keys(), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// signedRequest makes a request signed by s now for body.
func signedRequest(t testing.TB, s flist.Signer, method, path string, body []byte) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(string(body)))
	if err := flist.SignRequest(r, s, sha256.Sum256(body), time.Now()); err != nil {
		t.Fatal(err)
	}
	return r
}

// serve runs r through the hub's handler.
func serve(h *Hub, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.Handler().ServeHTTP(w, r)
	return w
}

// zeros is a body of n zero bytes made as it is read, counting what was read.
type zeros struct {
	n, read int64
}

func (z *zeros) Read(p []byte) (int, error) {
	if z.read >= z.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n-z.read)
	clear(p[:k])
	z.read += k
	return int(k), nil
}

// snapshot lists every file and directory under dir with its mode, size
// and contents' hash, one a line.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v %d", rel, info.Mode(), info.Size())
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// testFlist makes a small valid flist holding the directory name.
func testFlist(t testing.TB, name string) []byte {
	t.Helper()
	store, err := flist.NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := flist.NewBuilder(flist.BuildConfig{}, store, testutil.Logger(t))
	if err := b.Add(context.Background(), flist.Entry{Path: name, Mode: flist.ModeDir | 0o755}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "m.fl")
	if err := flist.Write(context.Background(), p, m); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
