package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/testutil"
)

// zdbBackend is the Backend over a 0-db namespace (user mode, key = object
// name), one RESP connection at a time: the semantics the engine's
// backends have, checked against our 0-db server.
type zdbBackend struct {
	addr, ns, password string

	mu sync.Mutex // guards c, br
	c  net.Conn
	br *bufio.Reader
}

var _ Backend = (*zdbBackend)(nil)

func (z *zdbBackend) call(ctx context.Context, args ...string) (resp.Reply, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.c == nil {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", z.addr)
		if err != nil {
			return resp.Reply{}, err
		}
		z.c, z.br = c, bufio.NewReader(c)
		if _, err := z.doLocked(ctx, "SELECT", z.ns, z.password); err != nil {
			z.c.Close()
			z.c = nil
			return resp.Reply{}, fmt.Errorf("selecting namespace %s: %w", z.ns, err)
		}
	}
	r, err := z.doLocked(ctx, args...)
	if err != nil && r.Kind != resp.KindError {
		z.c.Close()
		z.c = nil
	}
	return r, err
}

func (z *zdbBackend) doLocked(ctx context.Context, args ...string) (resp.Reply, error) {
	dl := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok {
		dl = d
	}
	_ = z.c.SetDeadline(dl)
	bargs := make([][]byte, len(args))
	for i, a := range args {
		bargs[i] = []byte(a)
	}
	if _, err := z.c.Write(resp.AppendRequest(nil, bargs...)); err != nil {
		return resp.Reply{}, err
	}
	r, err := resp.ReadReply(z.br, resp.Limits{MaxBulk: 64 << 20, MaxArgs: 1 << 16})
	if err == nil && r.Kind == resp.KindError {
		err = fmt.Errorf("zdb %s: %s", args[0], r.Str)
	}
	return r, err
}

func (z *zdbBackend) Put(ctx context.Context, name string, data []byte) error {
	_, err := z.call(ctx, "SET", name, string(data))
	return err
}

func (z *zdbBackend) Get(ctx context.Context, name string) ([]byte, error) {
	r, err := z.call(ctx, "GET", name)
	if err != nil {
		return nil, err
	}
	if r.Nil {
		return nil, fmt.Errorf("%s: %w", name, errNotFound)
	}
	return r.Str, nil
}

func (z *zdbBackend) Delete(ctx context.Context, name string) error {
	_, err := z.call(ctx, "DEL", name)
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "not found") {
		return fmt.Errorf("%s: %w", name, errNotFound)
	}
	return err
}

func (z *zdbBackend) List(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	args := []string{"SCAN"}
	for {
		r, err := z.call(ctx, args...)
		if err != nil {
			if strings.Contains(strings.ToLower(err.Error()), "no more data") {
				return out, nil
			}
			return nil, err
		}
		if len(r.Elems) != 2 {
			return nil, fmt.Errorf("zdb SCAN: reply %v", r)
		}
		for _, e := range r.Elems[1].Elems {
			if len(e.Elems) > 0 && strings.HasPrefix(string(e.Elems[0].Str), prefix) {
				out = append(out, string(e.Elems[0].Str))
			}
		}
		args = []string{"SCAN", string(r.Elems[0].Str)}
	}
}

func (z *zdbBackend) close() {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.c != nil {
		z.c.Close()
		z.c = nil
	}
}

// startZDB serves our 0-db on loopback with a password-protected namespace.
func startZDB(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := zdb.Open(zdb.Config{DataDir: dir + "/data", IndexDir: dir + "/index"}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.NamespaceCreate("qsfs", zdb.NamespaceOptions{Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := zdb.NewServer(zdb.ServerConfig{}, testutil.Logger(t), st)
	t.Cleanup(testutil.Go(t, "serving zdb", func(ctx context.Context) error { return srv.Serve(ctx, ln) }))
	return ln.Addr().String()
}

// TestOverZDB runs the file system over a 0-db namespace: a tree with a
// file larger than the cache, unmounted, then mounted on an empty cache
// from 0-db alone. A wrong password is a clear mount error.
func TestOverZDB(t *testing.T) {
	testutil.RequireRoot(t)
	addr := startZDB(t)
	b := &zdbBackend{addr: addr, ns: "qsfs", password: "s3cret"}
	t.Cleanup(b.close)
	f := mountFS(t, testConfig(t, 4<<20), b)
	m := f.Dir()
	os.MkdirAll(filepath.Join(m, "a/b"), 0o700)
	writeFile(t, filepath.Join(m, "a/b/small"), []byte("over zdb"))
	writeFile(t, filepath.Join(m, "big"), randomBytes(12<<20+1, 9))
	os.Symlink("a/b/small", filepath.Join(m, "link"))
	writeFile(t, filepath.Join(m, "big"), randomBytes(9<<20, 10)) // replaced: old blocks deleted
	want := digest(t, m)
	if err := f.Unmount(); err != nil {
		t.Fatalf("unmount: %v", err)
	}
	names, err := b.List(context.Background(), blockPrefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 10 {
		t.Errorf("blocks in 0-db: got %d, want 10 (9 of big, 1 of small)", len(names))
	}
	compareDigests(t, digest(t, mountFS(t, testConfig(t, 4<<20), b).Dir()), want)

	bad := &zdbBackend{addr: addr, ns: "qsfs", password: "wrong"}
	t.Cleanup(bad.close)
	_, err = New(testConfig(t, 4<<20), bad, testutil.Logger(t))
	if err == nil || !strings.Contains(err.Error(), "selecting namespace") {
		t.Fatalf("wrong password: got %v, want a namespace selection error", err)
	}
	if errors.Is(err, errNotFound) {
		t.Fatalf("wrong password reads as an empty backend: %v", err)
	}
}
