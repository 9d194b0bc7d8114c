package explorer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// memSource is an in-memory Source for tests and benchmarks.
type memSource struct {
	mu        sync.Mutex // guards the records and err
	nodes     []registry.Node
	farms     []registry.Farm
	twins     []registry.Twin
	contracts []registry.Contract
	err       error

	calls atomic.Int64 // Nodes calls, one per reload
	// block, when set, is waited on (or ctx) by Nodes.
	block chan struct{}
}

var (
	_ Source = (*memSource)(nil)
	_ Source = (*registry.Client)(nil) // what zgrid passes
)

func (m *memSource) Nodes(ctx context.Context) ([]registry.Node, error) {
	m.calls.Add(1)
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.nodes), m.err
}

func (m *memSource) Farms(context.Context) ([]registry.Farm, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.farms), m.err
}

func (m *memSource) Twins(context.Context) ([]registry.Twin, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.twins), m.err
}

// Contracts honours the filter as the registry does (zero fields match
// everything), though the explorer only asks for everything.
func (m *memSource) Contracts(_ context.Context, f registry.ContractFilter) ([]registry.Contract, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []registry.Contract
	for _, c := range m.contracts {
		if (f.TwinID == 0 || c.TwinID == f.TwinID) && (f.NodeID == 0 || c.NodeID == f.NodeID) &&
			(f.State == "" || c.State == f.State) && (f.Type == "" || c.Type == f.Type) {
			out = append(out, c)
		}
	}
	return out, m.err
}

func (m *memSource) setErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

var errSourceDown = errors.New("registry unreachable")

const gb = uint64(1) << 30

// alicePublicKey is Substrate's well-known dev key "Alice" (its SS58
// address is 5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY).
const alicePublicKey = "d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"

// testNow is the fixed clock of the fixture.
var testNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func ip(addr string, contract uint64) registry.PublicIP {
	return registry.PublicIP{IP: addr + "/24", Gateway: "185.0.0.1", ContractID: contract}
}

// fixture is a small grid whose every filter result is worked out by hand
// in the tests:
//
//	node farm status   free MRU GiB  free SRU GiB  free HRU GiB  country domain
//	1    1    up       10            380           0             BE      yes
//	2    1    down     57.6          974           3072          be      no
//	3    2    standby  20.8          80            2000          NL      no
//	4    2    down     0             0             0             NL      yes
//	5    3    standby  124           0             0             DE      no
//	6    3    up       1             200           0             DE      no
//	7    99   up       14            1             0             -       no
//
// Farm 1 has 2 free public IPs of 3; farms 2 and 3 none; farm 99 is unknown.
// Node 1 is rented by twin 21 (contract 4) and runs node contract 1; node 6
// runs node contract 5; contract 2 (node 2) is canceled.
func fixture() *memSource {
	ago := func(d time.Duration) time.Time { return testNow.Add(-d) }
	node := func(id, farm uint32, updated time.Time, country string, total, used registry.Resources) registry.Node {
		return registry.Node{
			ID: id, FarmID: farm, TwinID: 100 + id, Total: total, Used: used,
			Location: registry.Location{Country: country}, Updated: updated,
			Created: ago(30 * 24 * time.Hour), Uptime: 3600,
		}
	}
	n1 := node(1, 1, ago(10*time.Minute), "BE",
		registry.Resources{CRU: 8, MRU: 16 * gb, SRU: 500 * gb}, registry.Resources{CRU: 2, MRU: 4 * gb, SRU: 100 * gb})
	n1.PublicConfig = &registry.PublicConfig{IPv4: "185.0.0.10/24", GW4: "185.0.0.1", Domain: "n1.example.com"}
	n1.Location.City, n1.Location.Latitude, n1.Location.Longitude = "Ghent", 51.05, 3.72
	n1.Version, n1.UpdateFailed = "v1.2", []string{"v1.3"}
	n1.Features = []string{"zdb", "zmachine", "network", "wireguard"}
	n2 := node(2, 1, ago(2*time.Hour), "be",
		registry.Resources{CRU: 32, MRU: 64 * gb, SRU: 1024 * gb, HRU: 4096 * gb}, registry.Resources{HRU: 1024 * gb})
	n2.Reserved.SRU = 50 * gb
	n3 := node(3, 2, ago(3*time.Hour), "NL",
		registry.Resources{CRU: 16, MRU: 32 * gb, SRU: 100 * gb, HRU: 2000 * gb}, registry.Resources{MRU: 8 * gb})
	n3.Power = registry.PowerDown
	n4 := node(4, 2, ago(25*time.Hour), "NL",
		registry.Resources{CRU: 4, MRU: 8 * gb, SRU: 20 * gb}, registry.Resources{CRU: 4, MRU: 7 * gb})
	n4.Power = registry.PowerDown
	n4.PublicConfig = &registry.PublicConfig{Domain: "gw4.example.com"}
	n5 := node(5, 3, ago(5*time.Minute), "DE", registry.Resources{CRU: 64, MRU: 128 * gb}, registry.Resources{})
	n5.Reserved.MRU = 4 * gb
	n5.Power = registry.PowerUp
	n5.PowerTarget = registry.PowerDown
	n6 := node(6, 3, ago(80*time.Minute), "DE",
		registry.Resources{CRU: 2, MRU: 4 * gb, SRU: 250 * gb}, registry.Resources{MRU: gb, SRU: 30 * gb})
	n6.PublicConfig = &registry.PublicConfig{IPv6: "2a02::1/64"}
	n6.Features = []string{"zdb"}
	n7 := node(7, 99, ago(time.Minute), "", registry.Resources{CRU: 1, MRU: 16 * gb, SRU: 21 * gb}, registry.Resources{})

	return &memSource{
		// Out of order on purpose: the explorer sorts by id.
		nodes: []registry.Node{n4, n2, n7, n1, n3, n6, n5},
		farms: []registry.Farm{
			{ID: 3, Name: "gamma", TwinID: 12, PublicIPs: []registry.PublicIP{ip("185.0.3.2", 1)}},
			{ID: 1, Name: "alpha", TwinID: 10, Channel: "testing", PublicIPs: []registry.PublicIP{
				ip("185.0.1.2", 0), ip("185.0.1.3", 7), ip("185.0.1.4", 0)}},
			{ID: 2, Name: "beta <b>", TwinID: 11},
		},
		twins: func() []registry.Twin {
			ts := []registry.Twin{{ID: 10}, {ID: 11}, {ID: 12}, {ID: 20, Relay: "relay.example"}, {ID: 21, PublicKey: alicePublicKey}}
			for id := uint32(101); id <= 107; id++ {
				ts = append(ts, registry.Twin{ID: id, PublicKey: "aa"})
			}
			return ts
		}(),
		contracts: []registry.Contract{
			{ID: 4, Type: registry.TypeRent, TwinID: 21, NodeID: 1, State: registry.StateCreated},
			{ID: 1, Type: registry.TypeNode, TwinID: 20, NodeID: 1, State: registry.StateCreated, DeploymentHash: "ab",
				Metadata: "app", PublicIPsCount: 1, Created: ago(time.Hour)},
			{ID: 5, Type: registry.TypeNode, TwinID: 20, NodeID: 6, State: registry.StateCreated},
			{ID: 2, Type: registry.TypeNode, TwinID: 20, NodeID: 2, State: registry.StateCanceled},
			{ID: 3, Type: registry.TypeName, TwinID: 21, Name: "web", State: registry.StateCreated,
				Proof: &registry.Proof{Op: "name.create", Key: alicePublicKey, Payload: []byte(`{"name":"web"}`), Signature: "00"}},
		},
	}
}
