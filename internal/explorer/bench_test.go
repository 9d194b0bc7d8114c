package explorer

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// bigGrid is a grid of n nodes in n/100 farms, deterministic, with a mix
// of statuses, capacities, countries, domains and public IPs.
func bigGrid(n int) *memSource {
	r := rand.New(rand.NewPCG(1, 2))
	now := time.Now()
	countries := []string{"BE", "NL", "DE", "FR", "US", "EG", "IN", "BR"}
	src := &memSource{}
	farms := max(n/100, 1)
	for f := 1; f <= farms; f++ {
		farm := registry.Farm{ID: uint32(f), Name: "farm-" + strconv.Itoa(f), TwinID: uint32(f)}
		for i := range r.IntN(6) {
			var contract uint64
			if r.IntN(2) == 0 {
				contract = uint64(f*10 + i)
			}
			farm.PublicIPs = append(farm.PublicIPs, registry.PublicIP{
				IP: fmt.Sprintf("10.%d.%d.%d/24", f/256, f%256, i+2), Gateway: "10.0.0.1", ContractID: contract})
		}
		src.farms = append(src.farms, farm)
		src.twins = append(src.twins, registry.Twin{ID: uint32(f)})
	}
	for i := 1; i <= n; i++ {
		total := registry.Resources{
			CRU: uint64(4 << r.IntN(5)),
			MRU: uint64(8<<r.IntN(6)) * gb,
			SRU: uint64(250<<r.IntN(4)) * gb,
			HRU: uint64(r.IntN(3)) * 4096 * gb,
		}
		used := registry.Resources{
			CRU: r.Uint64N(total.CRU + 1),
			MRU: r.Uint64N(total.MRU/2 + 1),
			SRU: r.Uint64N(total.SRU/2 + 1),
			HRU: r.Uint64N(total.HRU/2 + 1),
		}
		node := registry.Node{
			ID: uint32(i), FarmID: uint32(1 + r.IntN(farms)), TwinID: uint32(farms + i),
			Total: total, Used: used,
			Location: registry.Location{Country: countries[r.IntN(len(countries))]},
			Updated:  now.Add(-time.Duration(r.IntN(int(30 * time.Hour)))),
			Uptime:   r.Uint64N(1 << 20),
		}
		if r.IntN(5) == 0 {
			node.Power = registry.PowerDown
		}
		if r.IntN(10) == 0 {
			node.PublicConfig = &registry.PublicConfig{Domain: fmt.Sprintf("gw%d.example.com", i)}
		}
		if r.IntN(4) == 0 {
			if node.PublicConfig == nil {
				node.PublicConfig = &registry.PublicConfig{}
			}
			node.PublicConfig.IPv4 = fmt.Sprintf("10.%d.%d.2/24", i/256, i%256)
		}
		src.nodes = append(src.nodes, node)
		src.twins = append(src.twins, registry.Twin{ID: node.TwinID})
	}
	for i := 1; i <= n; i++ {
		src.contracts = append(src.contracts, registry.Contract{ID: uint64(i), Type: registry.TypeNode,
			TwinID: uint32(1 + r.IntN(farms)), NodeID: uint32(1 + r.IntN(n)), State: registry.StateCreated})
	}
	return src
}

// benchQueries are /nodes queries as the page and clients send them.
var benchQueries = []string{
	"/nodes",
	"/nodes?status=up&free_mru=17179869184",
	"/nodes?farm_ids=1,2,3,4,5,6,7,8,9,10&status=up",
	"/nodes?free_sru=536870912000&sort_by=free_mru&sort_order=desc&size=100",
	"/nodes?ipv4=true&country=BE&page=3",
	"/nodes?domain=true&free_hru=1&sort_by=free_hru&sort_order=desc",
	"/nodes?status=standby&size=1000",
	"/nodes?free_ips=2&status=up&sort_by=updated&sort_order=desc&page=2&size=24",
	"/nodes?node_id=5000",
	"/nodes?free_cru=16&free_mru=34359738368&free_sru=1099511627776&status=up&sort_by=free_cru",
}

// BenchmarkNodes measures /nodes with filters over 10,000 nodes while the
// explorer reloads its snapshot every second in the background, in process
// (handler) and over loopback HTTP (http). It reports p50 and p99.
//
//	go test -run '^$' -bench BenchmarkNodes -benchtime 5000x ./internal/explorer/
func BenchmarkNodes(b *testing.B) {
	src := bigGrid(10_000)
	e := New(Config{Refresh: time.Second}, src, testutil.Logger(b))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = e.Run(ctx) })
	b.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	if err := e.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	h := e.Handler()

	b.Run("handler", func(b *testing.B) {
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			q := benchQueries[i%len(benchQueries)]
			i++
			start := time.Now()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, q, nil))
			lat = append(lat, time.Since(start))
			if rec.Code != http.StatusOK {
				b.Fatalf("%s: %d %s", q, rec.Code, rec.Body)
			}
		}
		reportPercentiles(b, lat)
	})

	b.Run("http", func(b *testing.B) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		client := srv.Client()
		lat := make([]time.Duration, 0, b.N)
		i := 0
		for b.Loop() {
			q := benchQueries[i%len(benchQueries)]
			i++
			start := time.Now()
			resp, err := client.Get(srv.URL + q)
			if err != nil {
				b.Fatal(err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			lat = append(lat, time.Since(start))
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("%s: %d %v", q, resp.StatusCode, err)
			}
		}
		reportPercentiles(b, lat)
	})
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(at(1), "max-ms")
}

// TestBigGridQueriesMatchBruteForce checks the snapshot's filters and
// orders on a large random grid against a direct evaluation of the rules.
func TestBigGridQueriesMatchBruteForce(t *testing.T) {
	src := bigGrid(3000)
	now := time.Now()
	e := New(Config{Now: func() time.Time { return now }}, src, testutil.Logger(t))
	h := e.Handler()
	farmFree := map[uint32]int{}
	for _, f := range src.farms {
		for _, ip := range f.PublicIPs {
			if ip.ContractID == 0 {
				farmFree[f.ID]++
			}
		}
	}
	for _, q := range benchQueries {
		t.Run(q, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, q, nil)
			f, err := parseNodeFilter(req.URL.Query(), e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			var want []registry.Node
			for _, n := range src.nodes {
				free := Free(&n)
				ok := (f.nodeID == nil || uint64(n.ID) == *f.nodeID) &&
					(len(f.farmIDs) == 0 || slices.Contains(f.farmIDs, uint64(n.FarmID))) &&
					(len(f.statuses) == 0 || slices.Contains(f.statuses, Status(&n, now))) &&
					free.CRU >= f.freeCRU && free.MRU >= f.freeMRU && free.SRU >= f.freeSRU && free.HRU >= f.freeHRU &&
					uint64(farmFree[n.FarmID]) >= f.freeIPs &&
					(f.ipv4 == nil || *f.ipv4 == (n.PublicConfig != nil && n.PublicConfig.IPv4 != "")) &&
					(f.domain == nil || *f.domain == (n.PublicConfig != nil && n.PublicConfig.Domain != "")) &&
					(f.country == nil || lower(*f.country) == lower(n.Location.Country))
				if ok {
					want = append(want, n)
				}
			}
			key := func(n *registry.Node) int64 {
				e := nodeEntry{node: n, free: Free(n), farm: &farmEntry{freeIPs: farmFree[n.FarmID]}}
				return f.sortBy.value(&e)
			}
			slices.SortStableFunc(want, func(a, b registry.Node) int {
				if c := cmpInt(key(&a), key(&b)); c != 0 {
					return c
				}
				return cmpInt(int64(a.ID), int64(b.ID))
			})
			if f.lim.desc {
				slices.Reverse(want)
			}
			wantIDs := []uint32{}
			start, end := f.lim.window(len(want))
			for _, n := range want[start:end] {
				wantIDs = append(wantIDs, n.ID)
			}
			code, body, total := get(t, h, q)
			if code != http.StatusOK {
				t.Fatalf("got %d %s", code, body)
			}
			if got := nodeIDs(t, body); !slices.Equal(got, wantIDs) {
				t.Errorf("got %d nodes %v, want %d %v", len(got), head(got), len(wantIDs), head(wantIDs))
			}
			if total != strconv.Itoa(len(want)) {
				t.Errorf("got total %s, want %d", total, len(want))
			}
		})
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func head(ids []uint32) []uint32 { return ids[:min(len(ids), 10)] }

// BenchmarkReload measures one reload of 10,000 nodes (and as many twins
// and contracts) from an in-memory source into a new snapshot.
func BenchmarkReload(b *testing.B) {
	e := New(Config{}, bigGrid(10_000), testutil.Logger(b))
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Refresh(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
