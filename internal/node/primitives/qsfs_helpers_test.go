package primitives

import (
	"context"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/testutil"
)

const (
	qsNS   = "qsfs"
	qsPass = "s3cret"
)

// qsBackend is a real 0-db server (internal/node/zdb) on a loopback port,
// with a password-protected namespace; it can be stopped.
type qsBackend struct {
	addr string
	dir  string // data and index
	stop func()
}

func startQSBackend(t testing.TB) *qsBackend {
	t.Helper()
	dir := t.TempDir()
	st, err := zdb.Open(zdb.Config{DataDir: filepath.Join(dir, "data"), IndexDir: filepath.Join(dir, "index"), Sync: zdb.SyncAlways}, testutil.Logger(t))
	if err != nil {
		t.Fatalf("opening zdb store: %v", err)
	}
	if err := st.NamespaceCreate(qsNS, zdb.NamespaceOptions{Password: qsPass, Mode: "user"}); err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := zdb.NewServer(zdb.ServerConfig{}, testutil.Logger(t))
	srv.AddStore(st)
	stopServe := testutil.Go(t, "serving zdb", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	b := &qsBackend{addr: ln.Addr().String(), dir: dir}
	b.stop = func() { stopServe(); st.Close() }
	t.Cleanup(b.Stop)
	return b
}

// Stop ends the server (idempotent).
func (b *qsBackend) Stop() {
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
}

func (b *qsBackend) zdb() gridtypes.ZdbBackend {
	return gridtypes.ZdbBackend{Address: b.addr, Namespace: qsNS, Password: qsPass}
}

// qsCluster is 3 groups of 2 data backends and 3 meta backends, and a qsfs
// config over them: 4 of 6 shards, surviving one group or one backend.
type qsCluster struct {
	groups [][]*qsBackend
	meta   []*qsBackend
	conf   gridtypes.QuantumSafeConfig
}

func newQSCluster(t testing.TB) *qsCluster {
	t.Helper()
	c := &qsCluster{conf: gridtypes.QuantumSafeConfig{
		MinimalShards: 4, ExpectedShards: 6, RedundantGroups: 1, RedundantNodes: 1,
		Encryption: gridtypes.Encryption{Algorithm: "AES", Key: qsKey(t)},
		Meta: gridtypes.QuantumSafeMeta{Type: "zdb", Config: gridtypes.QuantumSafeMetaConfig{
			Prefix: "qs", Encryption: gridtypes.Encryption{Algorithm: "AES", Key: qsKey(t)}}},
		Compression: gridtypes.QuantumCompression{Algorithm: "snappy"},
	}}
	for range 3 {
		var g []*qsBackend
		var zg gridtypes.ZdbGroup
		for range 2 {
			b := startQSBackend(t)
			g = append(g, b)
			zg.Backends = append(zg.Backends, b.zdb())
		}
		c.groups = append(c.groups, g)
		c.conf.Groups = append(c.conf.Groups, zg)
	}
	for range 3 {
		b := startQSBackend(t)
		c.meta = append(c.meta, b)
		c.conf.Meta.Config.Backends = append(c.conf.Meta.Config.Backends, b.zdb())
	}
	return c
}

func qsKey(t testing.TB) gridtypes.Bytes {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// loopbackPolicy is an egress policy letting the node reach the test's
// backends on loopback.
func loopbackPolicy() *egress.Policy {
	return &egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
}

// testQSFSConfig is a manager config for tests: small chunks and blocks.
func testQSFSConfig(t *testing.T) QSFSConfig {
	return QSFSConfig{Root: t.TempDir(), Egress: loopbackPolicy(), ChunkSize: 64 << 10, BlockSize: 64 << 10, Timeout: 3 * time.Second}
}

// scrape GETs url and returns the status and body.
func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
