package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/metrics"
	"github.com/zos-go/zos/internal/node/facts"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// explorerNodes asks the explorer's /nodes with query q.
func explorerNodes(t *testing.T, g *grid, q url.Values) []struct {
	NodeID      uint32   `json:"nodeId"`
	Country     string   `json:"country"`
	City        string   `json:"city"`
	Virtualized bool     `json:"virtualized"`
	Features    []string `json:"features"`
} {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/nodes?%s", g.httpPort, q.Encode()))
	if err != nil {
		t.Fatalf("explorer /nodes: %v", err)
	}
	defer resp.Body.Close()
	var out []struct {
		NodeID      uint32   `json:"nodeId"`
		Country     string   `json:"country"`
		City        string   `json:"city"`
		Virtualized bool     `json:"virtualized"`
		Features    []string `json:"features"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("explorer /nodes?%s: %s", q.Encode(), resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("explorer /nodes: %v", err)
	}
	return out
}

// TestNodeFactsLocationMetrics: a node started with --location and
// --metrics reports its location (the explorer's country and city filters
// match it), its hypervisor as this machine's facts say (virtualized only
// when it is), its features and the node API's facts commands; its farmer
// moves it to another location, which its next registrations keep, while
// another twin is refused; a zdb deployed shows in the node's metrics,
// scraped and parsed by Prometheus' text parser.
func TestNodeFactsLocationMetrics(t *testing.T) {
	requireNodePrereqs(t)
	g := startGrid(t)
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	n := startNode(t, g, farmer.farmToken(farm.ID), "--location", "Belgium,Ghent", "--metrics", metricsAddr)
	id := n.waitRegistered(farmer)
	node := strconv.Itoa(int(id))
	host := facts.Reader{}.Hypervisor()

	// The node's own location, through the explorer's filters.
	find := func(q url.Values) bool {
		for _, e := range explorerNodes(t, g, q) {
			if e.NodeID == id {
				return true
			}
		}
		return false
	}
	testutil.Eventually(t, 30*time.Second, "explorer shows the node in Belgium", func() (bool, error) {
		return find(url.Values{"country": {"Belgium"}, "city": {"Ghent"}}), nil
	})
	if find(url.Values{"country": {"Egypt"}}) {
		t.Fatal("country=Egypt matches a node in Belgium")
	}
	got := explorerNodes(t, g, url.Values{"node_id": {node}})
	if len(got) != 1 || got[0].Virtualized != host.Virtualized || !slices.Contains(got[0].Features, "zdb") || !slices.Contains(got[0].Features, "wireguard") {
		t.Fatalf("explorer node: got %+v, want virtualized %v (%s) and features with zdb and wireguard", got, host.Virtualized, host.Evidence)
	}

	// The node API's facts, through zosctl.
	var fv struct {
		Hypervisor string       `json:"hypervisor"`
		Features   []string     `json:"features"`
		DMI        *nodeapi.DMI `json:"dmi"`
		DMIError   string       `json:"dmi_error"`
	}
	farmer.json(&fv, "node", "facts", node)
	if fv.Hypervisor != host.Name || !slices.Contains(fv.Features, string(gridtypes.ZDBType)) {
		t.Fatalf("node facts: got hypervisor %q features %v, want %q and zdb", fv.Hypervisor, fv.Features, host.Name)
	}
	if _, err := (facts.Reader{}).DMI(); (err == nil) != (fv.DMI != nil) {
		t.Fatalf("node facts: got dmi %v (error %q), want one exactly when this machine has DMI (%v)", fv.DMI != nil, fv.DMIError, err)
	}

	// The farmer's location wins over the node's, also after the node
	// registers again (its uptime loop does, every 2 s here).
	tenant := newUser(t, g)
	if out, errs, code := tenant.run("node", "location", node, "France"); code == 0 || !strings.Contains(out+errs, "not") {
		t.Fatalf("another twin sets the location: exit %d\n%s%s", code, out, errs)
	}
	farmer.mustRun("node", "location", node, "Egypt,Cairo")
	testutil.Eventually(t, 30*time.Second, "explorer shows the node in Cairo", func() (bool, error) {
		return find(url.Values{"country": {"Egypt"}, "city": {"Cairo"}}), nil
	})
	testutil.Never(t, 6*time.Second, "the node's registration moves it back to Belgium", func() (bool, error) {
		return find(url.Values{"country": {"Belgium"}}), nil
	})

	// Metrics: a zdb deployed is counted, with its provisioning time.
	var d gridtypes.Deployment
	tenant.json(&d, "deploy", "zdb", "--node", node, "--size", "1M", "--password", "pw", "--name", "db")
	var stats nodeapi.Statistics
	tenant.json(&stats, "node", "stats", node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fams, err := metrics.Scrape(ctx, "http://"+metricsAddr+metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zos_node_workloads", []string{"type", "zdb", "state", "ok"}, 1},
		{"zos_node_deployments", nil, 1},
		{"zos_node_provision_duration_seconds", []string{"type", "zdb", "op", "provision", "result", "ok"}, 1},
		{"zos_node_capacity", []string{"resource", "cru", "kind", "total"}, float64(stats.Total.CRU)},
		{"zos_node_capacity", []string{"resource", "hru", "kind", "workloads"}, float64(gridtypes.Megabyte)},
		{"zos_node_info", []string{"node_id", node, "hypervisor", host.Name}, 1},
	} {
		if got, ok := fams.Value(tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s{%s}: got %v (present %v), want %v", tt.name, strings.Join(tt.labels, ","), got, ok, tt.want)
		}
	}
	var pools []nodeapi.Pool
	tenant.json(&pools, "node", "pools", node)
	if len(pools) == 0 {
		t.Fatal("node has no pools")
	}
	for _, p := range pools {
		if got, ok := fams.Value("zos_node_pool_size_bytes", "pool", p.Name); !ok || got != float64(p.Size) {
			t.Errorf("pool %s size: got %v (present %v), want %d as zos.storage.pools says", p.Name, got, ok, p.Size)
		}
	}
}
