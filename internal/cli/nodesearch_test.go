package cli

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// testGridState: four nodes in two farms; node 3 is down, node 4 rented
// by twin 50 and node 2 runs a contract.
func testGridState(now time.Time) gridState {
	up, old := now.Add(-time.Minute), now.Add(-24*time.Hour)
	res := func(cru, mruG, sruG, hruG uint64) registry.Resources {
		return registry.Resources{CRU: cru, MRU: mruG << 30, SRU: sruG << 30, HRU: hruG << 30}
	}
	// The explorer's reservations: 10% of memory (2 GiB at least) and
	// 20 GiB of SSD when the node reports none.
	return gridState{
		nodes: []registry.Node{
			{ID: 1, FarmID: 1, TwinID: 11, Total: res(4, 8, 100, 0), Updated: up, Location: registry.Location{Country: "BE", City: "Ghent"},
				Features: []string{"zdb", "zmount", "wireguard"}},
			{ID: 2, FarmID: 1, TwinID: 12, Total: res(16, 64, 500, 1000), Used: res(2, 4, 10, 0), Updated: up, Location: registry.Location{Country: "BE", City: "Brussels"},
				PublicConfig: &registry.PublicConfig{IPv4: "185.1.1.5/24", GW4: "185.1.1.1", Domain: "gw.example.com"}},
			{ID: 3, FarmID: 2, TwinID: 13, Total: res(32, 128, 1000, 0), Updated: old, Location: registry.Location{Country: "EG"}},
			{ID: 4, FarmID: 2, TwinID: 14, Total: res(8, 32, 200, 0), Updated: up, Location: registry.Location{Country: "EG", City: "Cairo"}},
		},
		farms: []registry.Farm{
			{ID: 1, Name: "one", TwinID: 100, PublicIPs: []registry.PublicIP{{IP: "185.1.1.2/24", Gateway: "185.1.1.1"}, {IP: "185.1.1.3/24", Gateway: "185.1.1.1", ContractID: 9}}},
			{ID: 2, Name: "two", TwinID: 200},
		},
		contracts: []registry.Contract{
			{ID: 9, Type: registry.TypeNode, State: registry.StateCreated, NodeID: 2, TwinID: 40},
			{ID: 10, Type: registry.TypeRent, State: registry.StateCreated, NodeID: 4, TwinID: 50},
			{ID: 11, Type: registry.TypeRent, State: registry.StateCanceled, NodeID: 1, TwinID: 50},
		},
	}
}

func ids(vs []nodeView) string {
	var s []string
	for _, v := range vs {
		s = append(s, fmt.Sprint(v.ID))
	}
	return strings.Join(s, ",")
}

func TestNodeSearch(t *testing.T) {
	now := time.Now()
	views := testGridState(now).views(now)
	yes, no := true, false
	for _, tt := range []struct {
		name  string
		q     nodeQuery
		want  string
		total int
	}{
		{"all by id", nodeQuery{}, "1,2,3,4", 4},
		{"farm", nodeQuery{farms: []uint32{2}}, "3,4", 2},
		{"status up", nodeQuery{status: "up"}, "1,2,4", 3},
		{"status down", nodeQuery{status: "down"}, "3", 1},
		{"country, any case", nodeQuery{country: "be"}, "1,2", 2},
		{"city", nodeQuery{city: "cairo"}, "4", 1},
		{"free memory: 8G total less 2G reserved is 6G", nodeQuery{free: registry.Resources{MRU: 6 << 30}}, "1,2,3,4", 4},
		{"free memory above node 1's", nodeQuery{free: registry.Resources{MRU: 6<<30 + 1}}, "2,3,4", 3},
		{"free cores: node 2 uses 2 of 16", nodeQuery{free: registry.Resources{CRU: 15}}, "3", 1},
		{"free hdd", nodeQuery{free: registry.Resources{HRU: 1}}, "2", 1},
		{"free public ips", nodeQuery{freeIPs: 1}, "1,2", 2},
		{"free public ips, more than any farm has", nodeQuery{freeIPs: 2}, "", 0},
		{"ipv4", nodeQuery{ipv4: &yes}, "2", 1},
		{"no domain", nodeQuery{domain: &no}, "1,3,4", 3},
		{"rentable: no rent, no contract", nodeQuery{rentable: &yes}, "1,3", 2},
		{"rented", nodeQuery{rented: &yes}, "4", 1},
		{"rented by 50", nodeQuery{rentedBy: 50}, "4", 1},
		{"available for 60", nodeQuery{availableFor: 60}, "1,2,3", 3},
		{"available for the renter", nodeQuery{availableFor: 50}, "1,2,3,4", 4},
		{"twin", nodeQuery{twin: 13}, "3", 1},
		{"features: node 1 reports them, the others report none", nodeQuery{features: []string{"zdb", "wireguard"}}, "1", 1},
		{"a feature no node reports", nodeQuery{features: []string{"qsfs"}}, "", 0},
		{"sort by free memory, descending", nodeQuery{sortBy: "free_mru", desc: true}, "3,2,4,1", 4},
		{"sort by country then id", nodeQuery{sortBy: "country"}, "1,2,3,4", 4},
		{"page 2 of 3", nodeQuery{sortBy: "id", page: 2, pageSize: 3}, "4", 4},
		{"page past the end", nodeQuery{page: 5, pageSize: 3}, "", 4},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, total := tt.q.search(views)
			if ids(got) != tt.want || total != tt.total {
				t.Fatalf("got %s (of %d), want %s (of %d)", ids(got), total, tt.want, tt.total)
			}
		})
	}
}

func TestPick(t *testing.T) {
	now := time.Now()
	views := testGridState(now).views(now)
	for _, tt := range []struct {
		name    string
		n       needs
		p       placeFlags
		twin    uint32
		want    uint32
		wantErr string
	}{
		{"most free memory among up nodes available to the twin", needs{}, placeFlags{}, 60, 2, ""},
		{"the renter gets its rented node first", needs{}, placeFlags{}, 50, 4, ""},
		{"farm constraint", needs{}, placeFlags{farms: idList{2}}, 60, 0, "no node is up and available to you (farm [2])"},
		{"country constraint", needs{}, placeFlags{country: "be"}, 50, 2, ""},
		{"a public IP: farm 1 only", needs{ips: 1}, placeFlags{}, 50, 2, ""},
		{"a name gateway needs a domain", needs{domain: true}, placeFlags{}, 50, 2, ""},
		{"only the network's nodes", needs{nodes: []uint32{1}}, placeFlags{}, 60, 1, ""},
		{"a node that provisions the types", needs{nodes: []uint32{1}, types: []string{"zdb"}}, placeFlags{}, 60, 1, ""},
		{"a node that reports features but not the type", needs{nodes: []uint32{1}, types: []string{"zmachine"}}, placeFlags{}, 60, 0,
			"node 1: does not provision zmachine"},
		{"nodes reporting no features are not judged on them", needs{nodes: []uint32{2}, types: []string{"zmachine"}}, placeFlags{}, 60, 2, ""},
		{"too much memory", needs{capacity: registry.Resources{MRU: 100 << 30}}, placeFlags{}, 60, 0,
			"none of the 2 nodes up and available to you has room for cru 0, mru 107374182400"},
		{"says why each node is left out", needs{capacity: registry.Resources{CRU: 15}, ips: 1}, placeFlags{country: "BE"}, 60, 0,
			"node 1: 4 free cores of 15 needed\n  node 2: 14 free cores of 15 needed"},
		{"a farm without free ips", needs{ips: 1}, placeFlags{farms: idList{2}}, 50, 0, "farm 2 has 0 free public IPs of 1 needed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pick(views, tt.n, &tt.p, tt.twin)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrNoNode) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got node %d, %v, want an ErrNoNode with %q", got.ID, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.ID != tt.want {
				t.Fatalf("got node %d, %v, want %d", got.ID, err, tt.want)
			}
		})
	}
}

// TestNeedsOf: a deployment's needs count every workload: capacity,
// public IPs, the public config gateways need, the types (and the overlay)
// the node must provision.
func TestNeedsOf(t *testing.T) {
	d, err := decodeDeployment([]byte(`
workloads:
  - {name: disk, type: zmount, data: {size: 1G}}
  - {name: pip, type: ip, data: {v4: true}}
  - {name: vm, type: zmachine, data: {flist: x, size: 1G, compute_capacity: {cpu: 2, memory: 1G}, network: {public_ip: pip, planetary: true, interfaces: [{network: n, ip: 10.1.2.2}]}}}
  - {name: gw, type: gateway-name-proxy, data: {name: app, backends: ["http://10.1.2.2:80"]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := needsOf(d)
	if err != nil {
		t.Fatal(err)
	}
	want := needs{capacity: registry.Resources{CRU: 2, MRU: 1 << 30, SRU: 2 << 30}, ips: 1, domain: true,
		types: []string{"zmount", "ip", "zmachine", "yggdrasil", "gateway-name-proxy"}}
	if fmt.Sprint(n) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", n, want)
	}
}
