package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"

	"github.com/zos-go/zos/internal/registry"
)

// TestFarmPolicyAndNodePower: the farmer sets and clears the farm's power
// policy; another twin cannot; bad input is refused before the grid;
// another farmer's standby of the node is refused, nothing set; the
// farmer's sets the target; a wake without an awake peer says so.
func TestFarmPolicyAndNodePower(t *testing.T) {
	grid := startGrid(t)
	g := "--grid=" + grid
	farmer, _ := newHome(t, grid)
	other, _ := newHome(t, grid)
	var farm registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "create", "powerfarm", g, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	fid := itoa(uint64(farm.ID))

	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "policy", fid, "--min-awake", "2", "--min-free-mru", "4G", g, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	if p := farm.PowerPolicy; p == nil || p.MinAwake != 2 || p.MinFree.MRU != 4<<30 {
		t.Fatalf("got policy %+v, want 2 nodes and 4 GiB", p)
	}
	for _, tt := range []struct {
		name string
		home string
		args []string
		want string
	}{
		{"another farmer", other, []string{"farm", "policy", fid, "--min-awake", "1", g}, "unauthorized"},
		{"empty policy", farmer, []string{"farm", "policy", fid, g}, "a policy keeps something awake"},
		{"bad size", farmer, []string{"farm", "policy", fid, "--min-free-mru", "lots", g}, "--min-free-mru"},
		{"bad farm", farmer, []string{"farm", "policy", "x", "--min-awake", "1", g}, "not a number"},
		{"standby of a node that does not exist", farmer, []string{"node", "standby", "999", g}, "not found"},
		{"bad node", farmer, []string{"node", "wake", "0", g}, "not a positive number"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, errs, code := run(t, tt.home, tt.args...)
			if code == 0 || !strings.Contains(errs, tt.want) {
				t.Errorf("got exit %d, stderr %q; want a failure saying %q", code, errs, tt.want)
			}
		})
	}
	out := mustRun(t, farmer, "farm", "policy", fid, "--clear", g)
	if !strings.Contains(out, "no power policy") {
		t.Fatalf("clear: got %q", out)
	}

	// A node of the farm (registered as the node does).
	ctx := context.Background()
	farmToken := strings.TrimSpace(mustRun(t, farmer, "farm", "token", fid, g))
	nodeKey, _ := identity.Generate()
	nnc, err := rmb.Connect(grid, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.NewClient(nnc, nodeKey).CreateTwin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	nnc.Close()
	var node registry.Node
	var nc *registry.Client
	testutil.Eventually(t, 5*time.Second, "registering node", func() (bool, error) {
		nnc, err := rmb.Connect(grid, nodeKey)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nnc.Close)
		nc = registry.NewClient(nnc, nodeKey)
		node, err = nc.RegisterNode(ctx, registry.NodeRegistration{FarmID: farm.ID, FarmToken: farmToken, Total: registry.Resources{CRU: 8},
			Interfaces: []registry.Interface{{Name: "eth0", MAC: "52:54:00:12:34:56"}}})
		return err == nil, err
	})
	nid := itoa(uint64(node.ID))
	target := func() string {
		n, err := nc.Node(ctx, node.ID)
		if err != nil {
			t.Fatal(err)
		}
		return n.PowerTarget
	}
	if _, errs, code := run(t, other, "node", "standby", nid, g); code == 0 || !strings.Contains(errs, "unauthorized") {
		t.Fatalf("another farmer's standby: got exit %d %q, want unauthorized", code, errs)
	}
	if got := target(); got != "" {
		t.Fatalf("after the refused standby: got target %q, want none", got)
	}
	if out := mustRun(t, farmer, "node", "standby", nid, g); !strings.Contains(out, "asked to go to standby") {
		t.Fatalf("standby: got %q", out)
	}
	if got := target(); got != registry.PowerDown {
		t.Fatalf("after standby: got target %q, want down", got)
	}
	// The node refuses (as gridsync reports it): node show says why.
	if err := nc.ReportPowerRefused(ctx, node.ID, "node busy: 1 deployments"); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, farmer, "node", "show", nid, g); !strings.Contains(out, "power:    up (target down), standby refused: node busy: 1 deployments") {
		t.Fatalf("node show after a refusal: got %q", out)
	}
	// The node went (as gridsync reports it); no other node can wake it.
	if err := nc.ReportPower(ctx, node.ID, registry.PowerDown); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, farmer, "node", "wake", nid, g); !strings.Contains(out, "no awake node of farm") {
		t.Fatalf("wake without a peer: got %q, want it to say no awake node can wake it", out)
	}
}
