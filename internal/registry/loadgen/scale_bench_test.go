package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/explorer"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// envInt is the integer in env var name, def when unset.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		tb.Fatalf("%s=%q: want a count", name, v)
	}
	return n
}

// cluster is three routed servers with a registry service on each, as
// three zgrid processes, in this process.
type cluster struct {
	srvs []*natsd.Server
	dirs []string
	nc   *nats.Conn // a client connection to all three
}

func startCluster(tb testing.TB) *cluster {
	tb.Helper()
	const n = 3
	ports := testutil.FreePorts(tb, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c := &cluster{srvs: make([]*natsd.Server, n), dirs: make([]string, n)}
	var eg errgroup.Group
	for i := range n {
		c.dirs[i] = tb.TempDir()
		eg.Go(func() error {
			s, err := natsd.Start(natsd.Config{StoreDir: c.dirs[i], Name: fmt.Sprintf("s%d", i), Port: natsd.RandomPort,
				ClusterName: "scale", ClusterPort: ports[i], Routes: routes}, testutil.Logger(tb))
			c.srvs[i] = s
			return err
		})
	}
	err := eg.Wait()
	for _, s := range c.srvs {
		if s != nil {
			tb.Cleanup(s.Shutdown)
		}
	}
	if err != nil {
		tb.Fatalf("starting cluster: %v", err)
	}
	var urls []string
	for _, s := range c.srvs {
		urls = append(urls, s.ClientURL())
	}
	for i, s := range c.srvs {
		nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(nc.Close)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		svc, err := registry.NewService(ctx, registry.Config{Replicas: 3}, nc, testutil.Logger(tb))
		cancel()
		if err != nil {
			tb.Fatalf("starting registry %d: %v", i, err)
		}
		testutil.Go(tb, fmt.Sprintf("registry %d", i), svc.Run)
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	c.nc = nc
	probe := registry.NewClient(nc, identity.Key{})
	testutil.Eventually(tb, 30*time.Second, "the registry to serve", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := probe.EventsInfo(ctx)
		return err == nil, err
	})
	return c
}

// dirSize is the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// scaleQueries are /nodes queries with filters, over the farms and
// countries the generator makes.
var scaleQueries = []string{
	"/nodes?status=up&free_mru=17179869184",
	"/nodes?farm_ids=1,2,3,4,5&status=up",
	"/nodes?free_sru=536870912000&sort_by=free_mru&sort_order=desc&size=100",
	"/nodes?country=BE&page=3",
	"/nodes?free_cru=16&status=up&sort_by=free_cru",
	"/nodes?rentable=true&size=50",
}

// BenchmarkGridScale fills a 3-server cluster with simulated nodes and
// contracts through the real client, then reports contract create
// latency, the explorer's full reload from the registry, /nodes with
// filters, a contract list by twin and memory. Sizes from
// ZOS_SCALE_NODES (default 200), ZOS_SCALE_CONTRACTS (default 1000) and
// ZOS_SCALE_WORKERS (default 16):
//
//	ZOS_SCALE_NODES=10000 ZOS_SCALE_CONTRACTS=10000 go test -run '^$' -bench GridScale -benchtime 1x -timeout 2h ./internal/registry/loadgen
func BenchmarkGridScale(b *testing.B) {
	cfg := Config{
		Nodes:     envInt(b, "ZOS_SCALE_NODES", 200),
		Contracts: envInt(b, "ZOS_SCALE_CONTRACTS", 1000),
		Workers:   envInt(b, "ZOS_SCALE_WORKERS", 16),
	}
	c := startCluster(b)
	ctx := context.Background()
	log := testutil.Logger(b)
	for b.Loop() {
		res, err := Run(ctx, cfg, c.nc, log)
		if err != nil {
			b.Fatal(err)
		}
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(Rate(cfg.Nodes, res.NodesTook), "nodes/s")
		b.ReportMetric(ms(res.NodeWrites.Percentile(0.99)), "node-p99-ms")
		b.ReportMetric(Rate(cfg.Contracts, res.ContractsTook), "contracts/s")
		b.ReportMetric(ms(res.ContractWrite.Percentile(0.50)), "contract-p50-ms")
		b.ReportMetric(ms(res.ContractWrite.Percentile(0.99)), "contract-p99-ms")
		b.ReportMetric(float64(res.StaleTwinReads), "stale-twin-retries")

		// The explorer reading everything from the registry, as zgrid's.
		reader := registry.NewClient(c.nc, identity.Key{}, registry.WithRequestTimeout(time.Minute))
		e := explorer.New(explorer.Config{Refresh: time.Hour, SourceTimeout: time.Hour}, reader, log)
		t0 := time.Now()
		if err := e.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(ms(time.Since(t0)), "explorer-reload-ms")
		h := e.Handler()
		lat := make(Latencies, 0, 200)
		for i := range 200 {
			q := scaleQueries[i%len(scaleQueries)]
			t0 := time.Now()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, q, nil))
			lat = append(lat, time.Since(t0))
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", q, rec.Code, rec.Body)
			}
		}
		slices.Sort(lat)
		b.ReportMetric(ms(lat.Percentile(0.99)), "nodes-query-p99-ms")

		// One twin's contracts, as zosctl lists them.
		var someTwin uint32
		if cfg.Contracts > 0 {
			all, err := reader.Contracts(ctx, registry.ContractFilter{NodeID: res.Nodes[0].ID})
			if err != nil || len(all) == 0 {
				b.Fatalf("contracts of node %d: got %d, %v", res.Nodes[0].ID, len(all), err)
			}
			someTwin = all[0].TwinID
			t0 = time.Now()
			mine, err := reader.Contracts(ctx, registry.ContractFilter{TwinID: someTwin})
			if err != nil || len(mine) == 0 {
				b.Fatalf("contracts of twin %d: got %d, %v", someTwin, len(mine), err)
			}
			b.ReportMetric(ms(time.Since(t0)), "twin-contracts-ms")
		}

		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		b.ReportMetric(float64(m.HeapInuse)/(1<<20)/3, "heap-per-server-MiB")
		var store int64
		for _, d := range c.dirs {
			store += dirSize(d)
		}
		b.ReportMetric(float64(store)/(1<<20)/3, "store-per-server-MiB")
	}
}
