package gridsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// fakePowerHost records what the node would do, as lines.
type fakePowerHost struct {
	mu       sync.Mutex // guards updating, did, err
	updating bool
	did      []string
	err      error
}

var _ PowerHost = (*fakePowerHost)(nil)

func (h *fakePowerHost) Updating() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.updating
}

func (h *fakePowerHost) Standby() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.did = append(h.did, "standby")
	return h.err
}

func (h *fakePowerHost) Wake(_ context.Context, macs []string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.did = append(h.did, "wake "+strings.Join(macs, ","))
	return h.err
}

func (h *fakePowerHost) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.did)
}

// powerGrid is a real grid with a farm per farmer and registered nodes.
type powerGrid struct {
	url string
}

func (g powerGrid) client(t *testing.T) (*registry.Client, identity.Key) {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	connect := func() *registry.Client {
		nc, err := rmb.Connect(g.url, k)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return registry.NewClient(nc, k)
	}
	if _, err := connect().CreateTwin(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	// A twin's rights come with a connection made once it exists.
	return connect(), k
}

// farm makes a farm with n nodes (MACs 52:54:00:00:<farm>:<i>) and
// returns the farmer's client, the nodes' clients and their records.
func (g powerGrid) farm(t *testing.T, n int) (*registry.Client, []*registry.Client, []registry.Node) {
	t.Helper()
	ctx := context.Background()
	farmer, key := g.client(t)
	f, err := farmer.CreateFarm(ctx, fmt.Sprintf("f%d", testutil.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := registry.NewFarmToken(key, f.ID, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var cs []*registry.Client
	var ns []registry.Node
	for i := range n {
		c, _ := g.client(t)
		nd, err := c.RegisterNode(ctx, registry.NodeRegistration{FarmID: f.ID, FarmToken: tok.String(), Total: registry.Resources{CRU: 2},
			Interfaces: []registry.Interface{{Name: "eth0", MAC: fmt.Sprintf("52:54:00:00:%02x:%02x", f.ID, i)}}})
		if err != nil {
			t.Fatal(err)
		}
		cs, ns = append(cs, c), append(ns, nd)
	}
	return farmer, cs, ns
}

// TestPowerTarget: a node told to go to standby goes when idle (reported
// down first), refuses with workloads or during an update (the reason on
// its record, nothing done), and ignores an old event once the target is
// up again.
func TestPowerTarget(t *testing.T) {
	g := powerGrid{url: gridtest.Start(t, gridtest.Loopback(t)).NATS}
	ctx := context.Background()
	farmer, clients, nodes := g.farm(t, 1)
	id := nodes[0].ID
	ev := registry.Event{Kind: registry.EventPowerTargetChanged, NodeID: id}
	record := func() registry.Node {
		n, err := farmer.Node(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := farmer.SetPowerTarget(ctx, id, registry.PowerDown); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		deployments int
		updating    bool
		wantRefused string
	}{
		{"workloads", 2, false, "node busy: 2 deployments"},
		{"updating", 0, true, "node busy: an update under way"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deps := &fakeDeployments{deps: map[uint64]*gridtypes.Deployment{}}
			for i := range tt.deployments {
				deps.deps[uint64(i+1)] = running(7, uint64(i+1))
			}
			host := &fakePowerHost{updating: tt.updating}
			p := NewPower(id, clients[0], deps, host, testutil.Logger(t))
			if err := p.Handle(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if got := host.lines(); len(got) != 0 {
				t.Errorf("got actions %q, want none", got)
			}
			if n := record(); n.Power != registry.PowerUp || n.PowerRefused != tt.wantRefused {
				t.Errorf("got power %q refused %q, want up refused %q", n.Power, n.PowerRefused, tt.wantRefused)
			}
		})
	}

	host := &fakePowerHost{}
	p := NewPower(id, clients[0], &fakeDeployments{}, host, testutil.Logger(t))
	if err := p.Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if got, want := host.lines(), []string{"standby"}; !slices.Equal(got, want) {
		t.Fatalf("idle node: got actions %q, want %q", got, want)
	}
	if n := record(); n.Power != registry.PowerDown || n.PowerRefused != "" {
		t.Fatalf("after standby: got power %q refused %q, want down, none", n.Power, n.PowerRefused)
	}

	// Back up (woken, reports uptime), the target up: the old event,
	// replayed after a restart, does nothing.
	if err := clients[0].ReportUptime(ctx, id, 1); err != nil {
		t.Fatal(err)
	}
	if err := farmer.SetPowerTarget(ctx, id, registry.PowerUp); err != nil {
		t.Fatal(err)
	}
	host2 := &fakePowerHost{}
	if err := NewPower(id, clients[0], &fakeDeployments{}, host2, testutil.Logger(t)).Handle(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if got := host2.lines(); len(got) != 0 {
		t.Fatalf("replayed event with target up: got actions %q, want none", got)
	}
}

// TestWakeOnlyOwnFarm: a node sends the magic packet for a node of its
// farm, to the MAC the registry holds, and refuses one of another farm
// (nothing sent).
func TestWakeOnlyOwnFarm(t *testing.T) {
	g := powerGrid{url: gridtest.Start(t, gridtest.Loopback(t)).NATS}
	ctx := context.Background()
	_, clients, nodes := g.farm(t, 2)
	_, _, others := g.farm(t, 1)
	host := &fakePowerHost{}
	p := NewPower(nodes[1].ID, clients[1], &fakeDeployments{}, host, testutil.Logger(t))

	err := p.Wake(ctx, others[0].ID)
	if !errors.Is(err, ErrWakeRefused) {
		t.Fatalf("wake of another farm's node: got %v, want ErrWakeRefused", err)
	}
	// Handle logs the refusal and goes on (not an error to retry).
	if err := p.Handle(ctx, registry.Event{Kind: registry.EventWake, Wake: &registry.Wake{NodeID: others[0].ID, FarmID: nodes[1].FarmID,
		MACs: []string{"52:54:00:66:66:66"}}}); err != nil {
		t.Fatalf("Handle of a refused wake: got %v, want nil", err)
	}
	if got := host.lines(); len(got) != 0 {
		t.Fatalf("after refused wakes: got actions %q, want none", got)
	}
	// The MACs come from the registry's record, not from the event.
	if err := p.Handle(ctx, registry.Event{Kind: registry.EventWake, Wake: &registry.Wake{NodeID: nodes[0].ID, MACs: []string{"52:54:00:66:66:66"}}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"wake " + nodes[0].Interfaces[0].MAC}
	if got := host.lines(); !slices.Equal(got, want) {
		t.Fatalf("got actions %q, want %q", got, want)
	}
}

// TestPowerRecheck: a node that refused standby goes once its last
// deployment is deleted (a deployment whose workloads are all deleted
// does not count), on the next recheck; without a refusal a recheck reads
// nothing and does nothing.
func TestPowerRecheck(t *testing.T) {
	g := powerGrid{url: gridtest.Start(t, gridtest.Loopback(t)).NATS}
	ctx := context.Background()
	farmer, clients, nodes := g.farm(t, 1)
	id := nodes[0].ID
	host := &fakePowerHost{}
	d := running(7, 1)
	deps := &fakeDeployments{deps: map[uint64]*gridtypes.Deployment{1: d}}
	p := NewPower(id, clients[0], deps, host, testutil.Logger(t))
	if err := p.Recheck(ctx); err != nil || len(host.lines()) != 0 {
		t.Fatalf("recheck without a refusal: got %v, actions %q; want nothing", err, host.lines())
	}
	if err := farmer.SetPowerTarget(ctx, id, registry.PowerDown); err != nil {
		t.Fatal(err)
	}
	if err := p.Handle(ctx, registry.Event{Kind: registry.EventPowerTargetChanged}); err != nil {
		t.Fatal(err)
	}
	if got := host.lines(); len(got) != 0 {
		t.Fatalf("with a deployment: got actions %q, want none", got)
	}
	deps.mu.Lock()
	d.Workloads[0].Result.State = gridtypes.StateDeleted
	deps.mu.Unlock()
	if err := p.Recheck(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := host.lines(), []string{"standby"}; !slices.Equal(got, want) {
		t.Fatalf("after the deployment was deleted: got actions %q, want %q", got, want)
	}
	n, err := farmer.Node(ctx, id)
	if err != nil || n.Power != registry.PowerDown || n.PowerRefused != "" {
		t.Fatalf("got power %q refused %q (%v), want down, none", n.Power, n.PowerRefused, err)
	}
}
