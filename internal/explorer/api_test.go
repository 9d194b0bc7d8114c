package explorer

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

func newTestExplorer(t testing.TB, src Source) *Explorer {
	return New(Config{Now: func() time.Time { return testNow }}, src, testutil.Logger(t))
}

// get serves one request and returns the status, body and total count.
func get(t testing.TB, h http.Handler, url string) (int, []byte, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.Bytes(), rec.Header().Get(TotalCountHeader)
}

func nodeIDs(t testing.TB, body []byte) []uint32 {
	t.Helper()
	var nodes []Node
	if err := json.Unmarshal(body, &nodes); err != nil {
		t.Fatalf("decoding nodes %s: %v", body, err)
	}
	ids := []uint32{}
	for _, n := range nodes {
		ids = append(ids, n.NodeID)
	}
	return ids
}

func TestNodeFilters(t *testing.T) {
	h := newTestExplorer(t, fixture()).Handler()
	g := func(n float64) string { return strconv.FormatUint(uint64(n*float64(gb)), 10) }
	tests := []struct {
		name  string
		query string
		want  []uint32
	}{
		{"all", "", []uint32{1, 2, 3, 4, 5, 6, 7}},
		{"farm ids", "farm_ids=1,3", []uint32{1, 2, 5, 6}},
		{"unknown farm", "farm_ids=99", []uint32{7}},
		{"farm ids with spaces", "farm_ids=2,%203", []uint32{3, 4, 5, 6}},
		{"status up", "status=up", []uint32{1, 6, 7}},
		{"status up case", "status=UP", []uint32{1, 6, 7}},
		{"status standby", "status=standby", []uint32{3, 5}},
		{"status down", "status=down", []uint32{2, 4}},
		{"free mru 14 GiB", "free_mru=" + g(14), []uint32{2, 3, 5, 7}},
		{"free mru exact", "free_mru=" + g(10), []uint32{1, 2, 3, 5, 7}},
		{"free mru just above", "free_mru=" + strconv.FormatUint(10*gb+1, 10), []uint32{2, 3, 5, 7}},
		{"free mru 1 byte", "free_mru=1", []uint32{1, 2, 3, 5, 6, 7}},
		{"free sru 200 GiB", "free_sru=" + g(200), []uint32{1, 2, 6}},
		{"free sru 1 byte", "free_sru=1", []uint32{1, 2, 3, 6, 7}},
		{"free hru 2000 GiB", "free_hru=" + g(2000), []uint32{2, 3}},
		{"free hru 2001 GiB", "free_hru=" + g(2001), []uint32{2}},
		{"free cru", "free_cru=16", []uint32{2, 3, 5}},
		{"free ips 1", "free_ips=1", []uint32{1, 2}},
		{"free ips 2", "free_ips=2", []uint32{1, 2}},
		{"free ips 3", "free_ips=3", []uint32{}},
		{"ipv4 (public config)", "ipv4=true", []uint32{1}},
		{"no ipv4", "ipv4=false", []uint32{2, 3, 4, 5, 6, 7}},
		{"empty value ignored", "farm_ids=&status=", []uint32{1, 2, 3, 4, 5, 6, 7}},
		{"single value given twice: the last", "node_id=1&node_id=4", []uint32{4}},
		{"domain", "domain=true", []uint32{1, 4}},
		{"no domain", "domain=false", []uint32{2, 3, 5, 6, 7}},
		{"country any case", "country=be", []uint32{1, 2}},
		{"country NL", "country=NL", []uint32{3, 4}},
		{"country none", "country=FR", []uint32{}},
		{"node id", "node_id=4", []uint32{4}},
		{"node id absent", "node_id=100", []uint32{}},
		{"twin id", "twin_id=103", []uint32{3}},
		{"up in farm 1", "status=up&farm_ids=1", []uint32{1}},
		{"up with 10 GiB", "status=up&free_mru=" + g(10), []uint32{1, 7}},
		{"standby with ipv4", "status=standby&ipv4=true", []uint32{}},
		{"up or down", "status=up&status=down", []uint32{1, 2, 4, 6, 7}},
		{"down with domain in NL", "status=down&domain=true&country=nl", []uint32{4}},
		{"features", "features=zdb", []uint32{1, 6}},
		{"every feature asked", "features=zdb,zmachine", []uint32{1}},
		{"features repeated", "features=zdb&features=wireguard", []uint32{1}},
		{"a feature no node has", "features=qsfs", []uint32{}},
		{"gateways", "gateways:", []uint32{1, 4}},
		{"gateways up", "gateways:status=up", []uint32{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := "/nodes?" + tt.query
			if q, ok := strings.CutPrefix(tt.query, "gateways:"); ok {
				url = "/gateways?" + q
			}
			code, body, total := get(t, h, url)
			if code != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", code, body)
			}
			if got := nodeIDs(t, body); !slices.Equal(got, tt.want) {
				t.Errorf("got nodes %v, want %v", got, tt.want)
			}
			if total != strconv.Itoa(len(tt.want)) {
				t.Errorf("got %s %q, want %d", TotalCountHeader, total, len(tt.want))
			}
		})
	}
}

func TestNodePaginationAndSort(t *testing.T) {
	h := newTestExplorer(t, fixture()).Handler()
	tests := []struct {
		name  string
		query string
		want  []uint32
		total int
	}{
		{"page 1", "size=3", []uint32{1, 2, 3}, 7},
		{"page 2", "size=3&page=2", []uint32{4, 5, 6}, 7},
		{"last page", "size=3&page=3", []uint32{7}, 7},
		{"past the end", "size=3&page=4", []uint32{}, 7},
		{"far past the end", "size=1000&page=4294967295", []uint32{}, 7},
		{"filtered page", "status=up&size=2&page=2", []uint32{7}, 3},
		{"node id desc", "sort_by=node_id&sort_order=desc", []uint32{7, 6, 5, 4, 3, 2, 1}, 7},
		{"free mru asc", "sort_by=free_mru", []uint32{4, 6, 1, 7, 3, 2, 5}, 7},
		{"free mru desc", "sort_by=free_mru&sort_order=desc", []uint32{5, 2, 3, 7, 1, 6, 4}, 7},
		{"free mru desc paged", "sort_by=free_mru&sort_order=desc&size=2&page=2", []uint32{3, 7}, 7},
		{"free sru desc filtered", "sort_by=free_sru&sort_order=desc&status=up", []uint32{1, 6, 7}, 3},
		{"free hru desc top", "sort_by=free_hru&sort_order=DESC&size=2", []uint32{2, 3}, 7},
		{"free cru", "sort_by=free_cru", []uint32{4, 7, 6, 1, 3, 2, 5}, 7},
		{"updated desc", "sort_by=updated&sort_order=desc", []uint32{7, 5, 1, 6, 2, 3, 4}, 7},
		{"free ips desc ties by id", "sort_by=free_ips&sort_order=desc&size=2", []uint32{2, 1}, 7},
		{"farm id", "sort_by=farm_id", []uint32{1, 2, 3, 4, 5, 6, 7}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body, total := get(t, h, "/nodes?"+tt.query)
			if code != http.StatusOK {
				t.Fatalf("got status %d (%s), want 200", code, body)
			}
			if got := nodeIDs(t, body); !slices.Equal(got, tt.want) {
				t.Errorf("got nodes %v, want %v", got, tt.want)
			}
			if total != strconv.Itoa(tt.total) {
				t.Errorf("got total %q, want %d", total, tt.total)
			}
		})
	}
}

func TestBadParameters(t *testing.T) {
	h := newTestExplorer(t, fixture()).Handler()
	tests := []struct {
		url      string
		code     int
		mentions string
	}{
		{"/nodes?free_mru=abc", 400, "free_mru"},
		{"/nodes?free_mru=-1", 400, "free_mru"},
		{"/nodes?free_sru=1.5", 400, "free_sru"},
		{"/nodes?free_hru=99999999999999999999999", 400, "free_hru"},
		{"/nodes?status=sleeping", 400, "status"},
		{"/nodes?page=0", 400, "page"},
		{"/nodes?page=x", 400, "page"},
		{"/nodes?size=0", 400, "size"},
		{"/nodes?size=5000", 400, "size"},
		{"/nodes?sort_by=color", 400, "sort_by"},
		{"/nodes?sort_order=up", 400, "sort_order"},
		{"/nodes?farm_ids=1,x", 400, "farm_ids"},
		{"/nodes?ipv4=maybe", 400, "ipv4"},
		{"/nodes?domain=2", 400, "domain"},
		{"/nodes?node_id=-1", 400, "node_id"},
		{"/nodes?node_id=18446744073709551616", 400, "node_id"},
		{"/nodes?region=europe", 400, "region is not supported"},
		{"/nodes?ret_count=sure", 400, "ret_count"},
		{"/nodes?price_max=cheap", 400, "price_max"},
		{"/nodes?status=up,sleeping", 400, "sleeping"},
		{"/nodes?free_mr=1", 400, "unknown parameter(s) free_mr"},
		{"/nodes?free_mru=x&status=y", 400, "status"}, // every problem is reported
		{"/nodes/abc", 400, "id"},
		{"/nodes/999", 404, "node 999"},
		{"/nodes/1?x=1", 400, "unknown"},
		{"/nodes/999/status", 404, "node 999"},
		{"/gateways?domain=false", 400, "domain=false"},
		{"/gateways?status=x", 400, "status"},
		{"/farms?free_ips=many", 400, "free_ips"},
		{"/farms/9", 404, "farm 9"},
		{"/twins/x", 400, "id"},
		{"/twins/4000", 404, "twin 4000"},
		{"/contracts?state=ended", 400, "state"},
		{"/gateways/2", 404, "gateway 2"},
		{"/twins?twin_id=x", 400, "twin_id"},
		{"/public_ips?free=maybe", 400, "free"},
		{"/farms?sort_by=color", 400, "sort_by"},
		{"/contracts/99/bills", 404, "contract 99"},
		{"/stats?status=x", 400, "status"},
		{"/contracts?type=vm", 400, "type"},
		{"/contracts?twin_id=me", 400, "twin_id"},
		{"/contracts/18446744073709551616", 400, "id"},
		{"/contracts/77", 404, "contract 77"},
		{"/stats?verbose=1", 400, "verbose"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			code, body, _ := get(t, h, tt.url)
			if code != tt.code {
				t.Fatalf("got status %d (%s), want %d", code, body, tt.code)
			}
			var e apiError
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("got body %s, want a JSON error (%v)", body, err)
			}
			if !strings.Contains(e.Error, tt.mentions) {
				t.Errorf("got error %q, want it to mention %q", e.Error, tt.mentions)
			}
		})
	}
}

func TestNodeView(t *testing.T) {
	h := newTestExplorer(t, fixture()).Handler()
	code, body, _ := get(t, h, "/nodes/1")
	if code != http.StatusOK {
		t.Fatalf("got status %d (%s), want 200", code, body)
	}
	var n NodeWithNestedCapacity
	if err := json.Unmarshal(body, &n); err != nil {
		t.Fatal(err)
	}
	want := Capacity{CRU: 6, MRU: 10 * gb, SRU: 380 * gb}
	if n.NodeID != 1 || n.Status != StatusUp || n.FarmName != "alpha" || n.FarmFreeIPs != 2 || n.Free != want {
		t.Errorf("got %+v, want node 1 up in farm alpha with 2 free IPs and free %+v", n, want)
	}
	if n.PublicConfig.Domain != "n1.example.com" || n.Capacity.Total.MRU != 16*gb || n.Reserved.MRU != 2*gb {
		t.Errorf("got public config %+v capacity %+v reserved %+v, want the registry record", n.PublicConfig, n.Capacity, n.Reserved)
	}
	if n.Version != "v1.2" || n.Channel != "testing" || !slices.Equal(n.UpdateFailed, []string{"v1.3"}) {
		t.Errorf("got version %q channel %q update_failed %q, want v1.2, its farm's testing, [v1.3]", n.Version, n.Channel, n.UpdateFailed)
	}
	// A node of a farm without a channel, never failed: the nodes' default
	// channel and an empty list, not null.
	_, body, _ = get(t, h, "/nodes/5")
	if !strings.Contains(string(body), `"channel":"production"`) || !strings.Contains(string(body), `"update_failed":[]`) {
		t.Errorf("got node 5 %s, want channel production and update_failed []", body)
	}
	_, body, _ = get(t, h, "/nodes/5/status")
	if got := strings.TrimSpace(string(body)); got != `{"status":"standby"}` {
		t.Errorf("got %s, want standby", got)
	}
}

// TestOurExtras: what of ours gridproxy lacks is served as extra fields:
// farm counts, contract use, stats by status and state.
func TestOurExtras(t *testing.T) {
	h := newTestExplorer(t, fixture()).Handler()

	_, body, total := get(t, h, "/farms")
	var farms []Farm
	if err := json.Unmarshal(body, &farms); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range farms {
		got = append(got, fmt.Sprintf("%d %s ips %d/%d used %d nodes %d up %d", f.FarmID, f.Name, f.FreeIPs, f.TotalIPs, f.UsedIPs, f.NodeCount, f.NodesUp))
	}
	want := []string{"1 alpha ips 2/3 used 1 nodes 2 up 1", "2 beta <b> ips 0/0 used 0 nodes 2 up 0", "3 gamma ips 0/1 used 1 nodes 2 up 1"}
	if !slices.Equal(got, want) || total != "3" {
		t.Errorf("got farms %q (total %s), want %q", got, total, want)
	}
	if code, body, _ := get(t, h, "/farms/2"); code != 200 || !strings.Contains(string(body), `"farmId":2`) {
		t.Errorf("got farm 2: %d %s", code, body)
	}
	_, body, _ = get(t, h, "/twins/20")
	if got := strings.TrimSpace(string(body)); got != `{"twinId":20,"accountId":"","relay":"relay.example","publicKey":""}` {
		t.Errorf("got twin %s", got)
	}

	_, body, _ = get(t, h, "/contracts/3")
	var c Contract
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Proof == nil || c.Proof.Op != "name.create" || string(c.Proof.Payload) != `{"name":"web"}` {
		t.Errorf("got contract 3 proof %+v, want the signed request kept", c.Proof)
	}

	_, body, _ = get(t, h, "/stats")
	var st Stats
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	gotStats := fmt.Sprintf("nodes %d %v contracts %d %v ips %d/%d cru %d updated %d",
		st.Nodes, st.NodesByStatus, st.Contracts, st.ContractsByState, st.FreePublicIPs, st.PublicIPs, st.Total.CRU, st.Updated)
	wantStats := fmt.Sprintf("nodes 7 map[down:2 standby:2 up:3] contracts 5 map[Created:4 Deleted:1] ips 2/4 cru 127 updated %d", testNow.Unix())
	if gotStats != wantStats {
		t.Errorf("got stats %q, want %q", gotStats, wantStats)
	}
}

func TestNoSnapshotAndStale(t *testing.T) {
	src := fixture()
	src.setErr(errSourceDown)
	now := testNow
	e := New(Config{Refresh: time.Second, Now: func() time.Time { return now }}, src, testutil.Logger(t))
	h := e.Handler()

	code, body, _ := get(t, h, "/nodes")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "registry unreachable") {
		t.Fatalf("got %d %s, want 503 naming the source error", code, body)
	}

	src.setErr(nil)
	if code, _, _ := get(t, h, "/nodes"); code != http.StatusOK {
		t.Fatalf("got %d after the source recovered, want 200", code)
	}
	calls := src.calls.Load()
	get(t, h, "/nodes")
	if got := src.calls.Load(); got != calls {
		t.Errorf("got %d source reads for a fresh snapshot, want %d", got, calls)
	}

	// Older than MaxAge (3s): a request reloads; if that fails, the stale
	// snapshot is still served.
	now = now.Add(4 * time.Second)
	src.setErr(errSourceDown)
	if code, body, total := get(t, h, "/nodes"); code != http.StatusOK || total != "7" {
		t.Fatalf("got %d %s, want the stale snapshot", code, body)
	}
	if got := src.calls.Load(); got != calls+1 {
		t.Errorf("got %d source reads, want %d (one reload attempt)", got, calls+1)
	}
}

func TestConcurrentReloadsShareOneRead(t *testing.T) {
	src := fixture()
	src.block = make(chan struct{})
	e := newTestExplorer(t, src)
	h := e.Handler()

	const n = 8
	codes := make(chan int, n)
	for range n {
		go func() {
			code, _, _ := get(t, h, "/stats")
			codes <- code
		}()
	}
	// Wait until the one reader is blocked in the source, then release it.
	_ = testutil.Poll(5*time.Second, func() (bool, error) { return src.calls.Load() != 0, nil })
	// While the reload is blocked in the source, no lock is held: a
	// request whose context ends returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/nodes", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable && rec.Code != http.StatusInternalServerError {
		t.Errorf("got %d for a canceled request during a reload, want an error", rec.Code)
	}
	close(src.block)
	for range n {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("got %d, want 200", code)
		}
	}
	if got := src.calls.Load(); got != 1 {
		t.Errorf("got %d source reads for %d concurrent requests, want 1", got, n)
	}
}

func TestRunRefreshesAndServes(t *testing.T) {
	testutil.NoLeaks(t)
	src := fixture()
	e := New(Config{Refresh: 10 * time.Millisecond, Addr: "127.0.0.1:0"}, src, testutil.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()

	testutil.Eventually(t, 5*time.Second, "three reloads", func() (bool, error) {
		n := src.calls.Load()
		return n >= 3, fmt.Errorf("got %d reloads", n)
	})
	src.setErr(errSourceDown)      // logged, not fatal
	failed := src.calls.Load() + 2 // the reload under way may have read before setErr
	testutil.Eventually(t, 5*time.Second, "Run to go on reloading after a failed reload", func() (bool, error) {
		n := src.calls.Load()
		return n >= failed, fmt.Errorf("got %d reloads, want %d", n, failed)
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got Run error %v, want nil on cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestServeOnListener(t *testing.T) {
	testutil.NoLeaks(t)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	e := New(Config{Now: func() time.Time { return testNow }}, fixture(), testutil.Logger(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Serve(ctx, ln) }()

	resp, err := client.Get("http://" + ln.Addr().String() + "/nodes?status=up")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(TotalCountHeader) != "3" {
		t.Errorf("got %d total %q", resp.StatusCode, resp.Header.Get(TotalCountHeader))
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("got Serve error %v, want nil", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: got %v, want nil", err)
	}
	bad := Config{Refresh: -1, DefaultPageSize: 10, MaxPageSize: 5}
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "refresh") || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("got %v, want refresh and page size errors", err)
	}
}

func TestWebPageServed(t *testing.T) {
	h := newTestExplorer(t, fixture()).Handler()
	for _, tt := range []struct{ url, ctype, contains string }{
		{"/", "text/html", `src="/static/app.js"`},
		{"/static/app.js", "javascript", "ret_count"},
		{"/static/style.css", "text/css", ".badge"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.url, nil))
		if rec.Code != 200 || !strings.Contains(rec.Header().Get("Content-Type"), tt.ctype) ||
			!strings.Contains(rec.Body.String(), tt.contains) {
			t.Errorf("%s: got %d %q, want 200 %s containing %q", tt.url, rec.Code, rec.Header().Get("Content-Type"), tt.ctype, tt.contains)
		}
		if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: got CSP %q", tt.url, csp)
		}
	}
	for _, s := range []string{"http://", "https://"} {
		for _, f := range []string{"web/index.html", "web/static/app.js", "web/static/style.css"} {
			b, err := webFiles.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), s) {
				t.Errorf("%s refers to %s: the page must not load anything from elsewhere", f, s)
			}
		}
	}
}

func TestRunStopsWhileSourceHangs(t *testing.T) {
	testutil.NoLeaks(t)
	src := fixture()
	src.block = make(chan struct{}) // never released
	e := New(Config{SourceTimeout: time.Minute}, src, testutil.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, "Run to call the source", func() (bool, error) { return src.calls.Load() > 0, nil })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return while the source hung")
	}
}
