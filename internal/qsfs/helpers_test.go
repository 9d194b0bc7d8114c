package qsfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/testutil"
	"github.com/zos-go/zos/internal/zdbclient"
)

const (
	testNS   = "qsfs"
	testPass = "s3cret"
)

// zdbNode is a real 0-db server (our internal/node/zdb) on a loopback
// port, with a namespace qsfs protected by a password. It can be stopped,
// wiped and started again on the same port.
type zdbNode struct {
	t     testing.TB
	dir   string
	addr  string
	store *zdb.Store
	stop  func()
}

func startNode(t testing.TB) *zdbNode {
	t.Helper()
	n := &zdbNode{t: t, dir: t.TempDir(), addr: "127.0.0.1:0"}
	n.start()
	return n
}

func (n *zdbNode) start() {
	n.t.Helper()
	st, err := zdb.Open(zdb.Config{DataDir: filepath.Join(n.dir, "data"), IndexDir: filepath.Join(n.dir, "index"), Sync: zdb.SyncAlways}, testutil.Logger(n.t))
	if err != nil {
		n.t.Fatalf("opening zdb store: %v", err)
	}
	if _, err := st.Namespace(testNS); err != nil {
		if err := st.NamespaceCreate(testNS, zdb.NamespaceOptions{Password: testPass, Mode: "user"}); err != nil {
			n.t.Fatalf("creating namespace: %v", err)
		}
	}
	var ln net.Listener
	// The port of a stopped node may linger a moment before it binds again.
	if err := testutil.Poll(10*time.Second, func() (bool, error) {
		ln, err = net.Listen("tcp", n.addr)
		return err == nil, nil
	}); err != nil {
		st.Close()
		n.t.Fatalf("listening on %s: %v", n.addr, err)
	}
	n.addr = ln.Addr().String()
	n.store = st
	srv := zdb.NewServer(zdb.ServerConfig{}, testutil.Logger(n.t))
	srv.AddStore(st)
	stopServe := testutil.Go(n.t, "serving zdb "+n.addr, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	n.stop = func() {
		stopServe()
		st.Close()
	}
	n.t.Cleanup(func() { n.Stop() })
}

// Stop ends the server and closes its store (idempotent).
func (n *zdbNode) Stop() {
	if n.stop != nil {
		n.stop()
		n.stop = nil
	}
}

// Restart starts a stopped node again on the same port.
func (n *zdbNode) Restart() {
	n.t.Helper()
	n.Stop()
	n.start()
}

// Wipe stops the node, removes all its data, and starts it empty on the
// same port: a backend replaced by a new disk.
func (n *zdbNode) Wipe() {
	n.t.Helper()
	n.Stop()
	for _, d := range []string{"data", "index"} {
		if err := os.RemoveAll(filepath.Join(n.dir, d)); err != nil {
			n.t.Fatal(err)
		}
	}
	n.start()
}

func (n *zdbNode) backend() Backend {
	return Backend{Address: n.addr, Namespace: testNS, Password: testPass}
}

// client is a raw 0-db client to the node's namespace, to tamper with it.
func (n *zdbNode) client() *zdbclient.Client {
	c := zdbclient.New(zdbclient.Options{Network: "tcp", Addr: n.addr, Namespace: testNS, Password: testPass, Timeout: 5 * time.Second})
	n.t.Cleanup(func() { c.Close() })
	return c
}

// cluster is groups of data nodes and meta nodes, and the Config naming
// them.
type cluster struct {
	groups [][]*zdbNode
	meta   []*zdbNode
	cfg    Config
}

// newCluster starts groups x perGroup data nodes and meta nodes: by
// default 3 groups of 2, 3 meta nodes, 4 of 6 shards, surviving one group
// or two backends lost, 64 KiB chunks so that small objects have several.
func newCluster(t testing.TB, groups, perGroup, meta int) *cluster {
	t.Helper()
	c := &cluster{cfg: Config{
		MinimalShards: 4, ExpectedShards: 6, RedundantGroups: 1, RedundantNodes: 2,
		DataKey: key(t), MetaKey: key(t), MetaPrefix: "qs1", Compression: CompressionSnappy,
		ChunkSize: 64 << 10, Timeout: 3 * time.Second,
	}}
	for range groups {
		var g []*zdbNode
		var bs []Backend
		for range perGroup {
			n := startNode(t)
			g = append(g, n)
			bs = append(bs, n.backend())
		}
		c.groups = append(c.groups, g)
		c.cfg.Groups = append(c.cfg.Groups, bs)
	}
	for range meta {
		n := startNode(t)
		c.meta = append(c.meta, n)
		c.cfg.Meta = append(c.cfg.Meta, n.backend())
	}
	return c
}

func (c *cluster) node(id string) *zdbNode {
	for _, g := range c.groups {
		for _, n := range g {
			if n.backend().ID() == id {
				return n
			}
		}
	}
	return nil
}

func (c *cluster) open(t testing.TB) *Store {
	t.Helper()
	s, err := New(c.cfg, testutil.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func key(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func random(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func mustPut(t testing.TB, s *Store, name string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, data); err != nil {
		t.Fatalf("Put %q: %v", name, err)
	}
}

// mustRead checks that name reads back as want, byte for byte.
func mustRead(t testing.TB, s *Store, name string, want []byte) {
	t.Helper()
	got, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get %q: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Get %q: got %d bytes, want %d identical bytes", name, len(got), len(want))
	}
}

// meta returns the store's metadata of name (the test is in the package).
func (s *Store) metaOf(t testing.TB, name string) objectMeta {
	t.Helper()
	m, ok, err := s.lookup(name)
	if err != nil || !ok {
		t.Fatalf("no metadata for %q: %v", name, err)
	}
	return m
}

func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}
