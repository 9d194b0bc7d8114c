package registry

import (
	"context"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func TestLifecycle(t *testing.T) {
	testutil.NoLeaks(t)
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(t, "farm1", 2)

	// CreateTwin is idempotent per key.
	again, err := farmer.c.CreateTwin(ctx, "")
	if err != nil || again.ID != farmer.twin.ID {
		t.Fatalf("CreateTwin again: got %+v, %v; want twin %d", again, err, farmer.twin.ID)
	}
	if tw, err := farmer.c.TwinByKey(ctx, farmer.key.Public()); err != nil || tw.ID != farmer.twin.ID {
		t.Fatalf("TwinByKey: got %+v, %v", tw, err)
	}
	// Registering again updates the same node.
	n2, err := nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, Version: "v2"})
	if err != nil || n2.ID != node.ID || n2.Version != "v2" {
		t.Fatalf("re-register: got %+v, %v; want node %d v2", n2, err, node.ID)
	}
	if n, err := farmer.c.NodeByTwin(ctx, nodeUser.twin.ID); err != nil || n.ID != node.ID {
		t.Fatalf("NodeByTwin: got %+v, %v", n, err)
	}
	if err := nodeUser.c.ReportUptime(ctx, node.ID, 42); err != nil {
		t.Fatalf("ReportUptime: %v", err)
	}
	if err := farmer.c.SetPublicConfig(ctx, node.ID, &PublicConfig{IPv4: "185.2.0.5/24", GW4: "185.2.0.1", Domain: "gw.example.com"}); err != nil {
		t.Fatalf("SetPublicConfig: %v", err)
	}

	if err := farmer.c.SetPowerTarget(ctx, node.ID, PowerDown); err != nil {
		t.Fatalf("SetPowerTarget: %v", err)
	}
	wantErr(t, "power target by the node", nodeUser.c.SetPowerTarget(ctx, node.ID, PowerUp), ErrUnauthorized)
	wantErr(t, "bad power", farmer.c.SetPowerTarget(ctx, node.ID, "sideways"), ErrInvalid)
	if err := nodeUser.c.ReportPower(ctx, node.ID, PowerDown); err != nil {
		t.Fatalf("ReportPower: %v", err)
	}
	if n, _ := farmer.c.Node(ctx, node.ID); n.Power != PowerDown || n.PowerTarget != PowerDown {
		t.Fatalf("power: got %q target %q", n.Power, n.PowerTarget)
	}
	if err := farmer.c.SetPowerTarget(ctx, node.ID, PowerUp); err != nil {
		t.Fatal(err)
	}

	u := g.user(t)
	c, err := u.c.CreateNodeContract(ctx, node.ID, "0123456789abcdef0123456789abcdef", "meta", 1)
	if err != nil {
		t.Fatalf("CreateNodeContract: %v", err)
	}
	if len(c.PublicIPs) != 1 || c.State != StateCreated || c.TwinID != u.twin.ID {
		t.Fatalf("contract: got %+v", c)
	}
	c, err = u.c.UpdateNodeContract(ctx, c.ID, "ffff", "meta2")
	if err != nil || c.DeploymentHash != "ffff" {
		t.Fatalf("UpdateNodeContract: got %+v, %v", c, err)
	}
	if err := nodeUser.c.ReportUsed(ctx, node.ID, map[uint64]Resources{c.ID: {CRU: 1, MRU: 1 << 30}}); err != nil {
		t.Fatalf("ReportUsed: %v", err)
	}
	n, err := u.c.Node(ctx, node.ID)
	if err != nil || n.Used.MRU != 1<<30 || n.Uptime != 42 || n.PublicConfig == nil || n.PublicConfig.Domain != "gw.example.com" {
		t.Fatalf("Node: got %+v, %v", n, err)
	}
	active, err := nodeUser.c.ActiveNodeContracts(ctx, node.ID)
	if err != nil || len(active) != 1 || active[0].ID != c.ID || active[0].Used.CRU != 1 {
		t.Fatalf("ActiveNodeContracts: got %+v, %v", active, err)
	}
	if err := u.c.CancelContract(ctx, c.ID); err != nil {
		t.Fatalf("CancelContract: %v", err)
	}
	f, err := u.c.Farm(ctx, farm.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range f.PublicIPs {
		if ip.ContractID != 0 {
			t.Fatalf("ip %s still held by %d after cancel", ip.IP, ip.ContractID)
		}
	}
	wantErr(t, "cancel twice", u.c.CancelContract(ctx, c.ID), ErrCanceled)
	if active, _ := nodeUser.c.ActiveNodeContracts(ctx, node.ID); len(active) != 0 {
		t.Fatalf("active after cancel: %+v", active)
	}

	// Names are unique; canceling frees the name.
	nc, err := u.c.CreateNameContract(ctx, "myapp")
	if err != nil {
		t.Fatalf("CreateNameContract: %v", err)
	}
	_, err = farmer.c.CreateNameContract(ctx, "myapp")
	wantErr(t, "second name", err, ErrNameTaken)
	if err := u.c.CancelContract(ctx, nc.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := farmer.c.CreateNameContract(ctx, "myapp"); err != nil {
		t.Fatalf("name after cancel: %v", err)
	}

	// Rent: another twin cannot deploy on a rented node.
	rc, err := u.c.CreateRentContract(ctx, node.ID)
	if err != nil {
		t.Fatalf("CreateRentContract: %v", err)
	}
	_, err = farmer.c.CreateNodeContract(ctx, node.ID, "aa", "", 0)
	wantErr(t, "contract on rented node", err, ErrNodeRented)
	if _, err := u.c.CreateNodeContract(ctx, node.ID, "aa", "", 0); err != nil {
		t.Fatalf("renter's contract: %v", err)
	}
	if err := u.c.CancelContract(ctx, rc.ID); err != nil {
		t.Fatal(err)
	}

	all, err := u.c.Contracts(ctx, ContractFilter{TwinID: u.twin.ID})
	if err != nil || len(all) != 4 {
		t.Fatalf("Contracts of twin: got %d, %v; want 4", len(all), err)
	}
	farms, err := u.c.Farms(ctx)
	if err != nil || len(farms) != 1 {
		t.Fatalf("Farms: got %d, %v", len(farms), err)
	}
	nodes, err := u.c.Nodes(ctx)
	if err != nil || len(nodes) != 1 {
		t.Fatalf("Nodes: got %d, %v", len(nodes), err)
	}
	_, err = u.c.Node(ctx, 999)
	wantErr(t, "missing node", err, ErrNotFound)
}
