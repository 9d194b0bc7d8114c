package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// TestPlanPower: what a farm's policy asks of its nodes, one change at a
// time.
func TestPlanPower(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	up := func(id uint32, cru uint64) Node {
		return Node{ID: id, Total: Resources{CRU: cru}, Power: PowerUp, Updated: now.Add(-time.Minute)}
	}
	standby := func(id uint32) Node {
		return Node{ID: id, Total: Resources{CRU: 8}, Power: PowerDown, PowerTarget: PowerDown, Updated: now.Add(-time.Hour)}
	}
	used := func(n Node) Node { n.Used = Resources{CRU: 1}; return n }
	refused := func(n Node) Node { n.PowerRefused = "updating"; return n }
	waking := func(n Node) Node { n.PowerTarget = PowerUp; return n }
	down := func(n Node) Node { n.PowerTarget = PowerDown; return n }
	offline := func(n Node) Node { n.Updated = now.Add(-3 * time.Hour); return n }
	tests := []struct {
		name   string
		policy PowerPolicy
		nodes  []Node
		busy   map[uint32]bool
		want   []PowerAction
	}{
		{"idle beyond min awake: highest id to standby", PowerPolicy{MinAwake: 1}, []Node{up(1, 4), up(2, 4), up(3, 4)}, nil,
			[]PowerAction{{3, PowerDown}}},
		{"at min awake: nothing", PowerPolicy{MinAwake: 2}, []Node{up(1, 4), up(2, 4), standby(3)}, nil, nil},
		{"below min awake: lowest standby woken", PowerPolicy{MinAwake: 2}, []Node{up(1, 4), standby(2), standby(3)}, nil,
			[]PowerAction{{2, PowerUp}}},
		{"free capacity short: wake", PowerPolicy{MinFree: Resources{CRU: 6}}, []Node{up(1, 4), standby(2)}, nil,
			[]PowerAction{{2, PowerUp}}},
		{"free capacity met only with both: nothing", PowerPolicy{MinFree: Resources{CRU: 6}}, []Node{up(1, 4), up(2, 4)}, nil, nil},
		{"node with a contract stays up", PowerPolicy{MinAwake: 1}, []Node{up(1, 4), up(2, 4)}, map[uint32]bool{2: true},
			[]PowerAction{{1, PowerDown}}},
		{"node with used capacity stays up", PowerPolicy{MinAwake: 1}, []Node{up(1, 4), used(up(2, 4))}, nil,
			[]PowerAction{{1, PowerDown}}},
		{"node that refused stays up", PowerPolicy{MinAwake: 1}, []Node{up(1, 4), refused(up(2, 4))}, nil,
			[]PowerAction{{1, PowerDown}}},
		{"a wake under way: no second one", PowerPolicy{MinAwake: 3}, []Node{up(1, 4), waking(standby(2)), standby(3)}, nil, nil},
		{"no standby node to wake: nothing", PowerPolicy{MinAwake: 3}, []Node{up(1, 4), up(2, 4)}, nil, nil},
		{"a node that refused standby counts as awake", PowerPolicy{MinAwake: 2}, []Node{up(1, 4), refused(down(up(2, 4))), standby(3)}, nil, nil},
		{"offline node neither counted nor woken", PowerPolicy{MinAwake: 1}, []Node{offline(up(1, 4)), up(2, 4)}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PlanPower(tt.policy, slices.Clone(tt.nodes), tt.busy, now)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// powerFarm is a farm of n registered nodes, each with a MAC, all having
// reported uptime.
func powerFarm(t *testing.T, g *grid, n int) (farmer *user, farm Farm, nodes []*user, ids []uint32) {
	t.Helper()
	ctx := context.Background()
	farmer = g.user(t)
	farm, err := farmer.c.CreateFarm(ctx, fmt.Sprintf("power%d", farmer.twin.ID))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		u := g.user(t)
		nd, err := u.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, FarmToken: farmToken(t, farmer, farm.ID),
			Total: Resources{CRU: 4, MRU: 8 << 30}, Interfaces: []Interface{{Name: "eth0", MAC: fmt.Sprintf("52:54:00:00:%02x:%02x", farm.ID, i)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := u.c.ReportUptime(ctx, nd.ID, 10); err != nil {
			t.Fatal(err)
		}
		nodes, ids = append(nodes, u), append(ids, nd.ID)
	}
	return farmer, farm, nodes, ids
}

// TestWakeThroughFarmPeer: the farmer's power target up for a node in
// standby reaches an awake node of the same farm as a wake event with the
// sleeper's MAC; from another farmer the request is refused; without an
// awake peer the answer says so.
func TestWakeThroughFarmPeer(t *testing.T) {
	g := newGrid(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	farmer, farm, nodes, ids := powerFarm(t, g, 2)
	sleeper, peer := ids[0], ids[1]
	other, _, _, _ := powerFarm(t, g, 1)

	// Standby: the farmer asks, the node complies and reports down.
	if err := farmer.c.SetPowerTarget(ctx, sleeper, PowerDown); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].c.ReportPower(ctx, sleeper, PowerDown); err != nil {
		t.Fatal(err)
	}

	events, err := nodes[1].c.WatchNode(ctx, peer, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Another farmer cannot wake it.
	wantErr(t, "another farm's twin wakes the node", other.c.SetPowerTarget(ctx, sleeper, PowerUp), ErrUnauthorized)

	res, err := farmer.c.PowerTarget(ctx, sleeper, PowerUp)
	if err != nil {
		t.Fatalf("waking node %d: %v", sleeper, err)
	}
	if res.WakeVia != peer || res.Note != "" {
		t.Fatalf("got %+v, want woken via node %d", res, peer)
	}
	for ev := range events {
		if ev.Kind != EventWake {
			continue
		}
		want := fmt.Sprintf("52:54:00:00:%02x:00", farm.ID)
		if ev.Wake == nil || ev.Wake.NodeID != sleeper || ev.Wake.FarmID != farm.ID || !slices.Equal(ev.Wake.MACs, []string{want}) {
			t.Fatalf("got wake %+v, want node %d of farm %d, MAC %s", ev.Wake, sleeper, farm.ID, want)
		}
		break
	}
	if ctx.Err() != nil {
		t.Fatal("no wake event reached the awake peer")
	}

	// The peer goes to standby too: nobody is left to wake the sleeper.
	if err := farmer.c.SetPowerTarget(ctx, sleeper, PowerDown); err != nil {
		t.Fatal(err)
	}
	if err := farmer.c.SetPowerTarget(ctx, peer, PowerDown); err != nil {
		t.Fatal(err)
	}
	// The target is set (the farmer may press the button) and the answer
	// says nobody was asked.
	res, err = farmer.c.PowerTarget(ctx, sleeper, PowerUp)
	if err != nil {
		t.Fatal(err)
	}
	if res.WakeVia != 0 || !strings.Contains(res.Note, "no awake node") {
		t.Fatalf("waking with no awake peer: got %+v, want a note that no awake node can", res)
	}
}

// TestPowerRefusedRecorded: a node refusing standby stays up with the
// reason on its record; the next target clears it.
func TestPowerRefusedRecorded(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, _, nodes, ids := powerFarm(t, g, 1)
	if err := farmer.c.SetPowerTarget(ctx, ids[0], PowerDown); err != nil {
		t.Fatal(err)
	}
	if err := nodes[0].c.ReportPowerRefused(ctx, ids[0], "2 deployments"); err != nil {
		t.Fatal(err)
	}
	n, err := farmer.c.Node(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if n.Power != PowerUp || n.PowerRefused != "2 deployments" {
		t.Fatalf("got power %q refused %q, want up, refused %q", n.Power, n.PowerRefused, "2 deployments")
	}
	// A refusal of a node that says it is down makes no sense.
	err = nodes[0].c.write(ctx, OpNodePower, nodePowerReq{NodeID: ids[0], Power: PowerDown, Refused: "x"}, nil)
	wantErr(t, "refused while down", err, ErrInvalid)
	if err := farmer.c.SetPowerTarget(ctx, ids[0], PowerUp); err != nil {
		t.Fatal(err)
	}
	if n, err = farmer.c.Node(ctx, ids[0]); err != nil || n.PowerRefused != "" {
		t.Fatalf("after a new target: got refused %q (%v), want none", n.PowerRefused, err)
	}
}

// TestFarmPowerPolicy: only the farmer sets the policy; an empty one is
// refused; applied, it puts the idle node beyond the minimum to standby
// and the farm's busy node stays up.
func TestFarmPowerPolicy(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, nodes, ids := powerFarm(t, g, 3)
	other, _, _, _ := powerFarm(t, g, 1)

	_, err := other.c.SetFarmPowerPolicy(ctx, farm.ID, &PowerPolicy{MinAwake: 1})
	wantErr(t, "another twin sets the policy", err, ErrUnauthorized)
	_, err = farmer.c.SetFarmPowerPolicy(ctx, farm.ID, &PowerPolicy{})
	wantErr(t, "empty policy", err, ErrInvalid)
	if f, err := farmer.c.Farm(ctx, farm.ID); err != nil || f.PowerPolicy != nil {
		t.Fatalf("after refused policies: got %+v (%v), want none", f.PowerPolicy, err)
	}

	// Node 3 (highest id) has a contract: it stays up.
	tenant := g.user(t)
	if _, err := tenant.c.CreateNodeContract(ctx, ids[2], "ab", "", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := farmer.c.SetFarmPowerPolicy(ctx, farm.ID, &PowerPolicy{MinAwake: 1}); err != nil {
		t.Fatal(err)
	}
	events, err := nodes[1].c.WatchNode(ctx, ids[1], 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.svc.applyPolicies(ctx); err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, id := range ids {
		n, err := farmer.c.Node(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, n.PowerTarget)
	}
	if want := []string{"", PowerDown, ""}; !slices.Equal(targets, want) {
		t.Fatalf("after one round: got targets %q, want %q", targets, want)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case ev := <-events:
		if ev.Kind != EventPowerTargetChanged {
			t.Fatalf("got event %q, want %q", ev.Kind, EventPowerTargetChanged)
		}
	case <-wctx.Done():
		t.Fatal("the node put to standby got no event")
	}
}

// TestPowerLoop: the service applies the policy on its own: with two
// idle nodes and one to keep awake, one goes to standby; when the farmer
// raises the minimum to two, the grid wakes it through the other.
func TestPowerLoop(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv.ClientURL())
	g := &grid{srv: srv, nc: nc, svc: startService(t, nc, Config{Replicas: 1, PowerEvery: 200 * time.Millisecond})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	farmer, farm, nodes, ids := powerFarm(t, g, 2)
	if _, err := farmer.c.SetFarmPowerPolicy(ctx, farm.ID, &PowerPolicy{MinAwake: 1}); err != nil {
		t.Fatal(err)
	}
	node := func(id uint32) Node {
		n, err := farmer.c.Node(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	testutil.Eventually(t, 20*time.Second, "one node asked to standby", func() (bool, error) {
		return node(ids[1]).PowerTarget == PowerDown, fmt.Errorf("targets %q %q", node(ids[0]).PowerTarget, node(ids[1]).PowerTarget)
	})
	// The node complies (as gridsync does).
	if err := nodes[1].c.ReportPower(ctx, ids[1], PowerDown); err != nil {
		t.Fatal(err)
	}
	events, err := nodes[0].c.WatchNode(ctx, ids[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := farmer.c.SetFarmPowerPolicy(ctx, farm.ID, &PowerPolicy{MinAwake: 2}); err != nil {
		t.Fatal(err)
	}
	for ev := range events {
		if ev.Kind == EventWake && ev.Wake != nil && ev.Wake.NodeID == ids[1] {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatal("the grid did not ask the awake node to wake the other")
	}
	if got := node(ids[0]).PowerTarget; got == PowerDown {
		t.Fatalf("the awake node got target %q", got)
	}
}
