package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// startGrid runs what `zgrid run` runs (gridd: embedded NATS with the
// relay's key authentication, and the registry) on a random loopback port
// until cleanup, and returns the client URL.
func startGrid(t *testing.T) string {
	t.Helper()
	return gridtest.Start(t, gridtest.Loopback(t)).NATS
}

// newHome makes a zosctl home with a key and a twin on grid, and returns
// it with the twin id.
func newHome(t *testing.T, grid string) (string, uint32) {
	t.Helper()
	home := t.TempDir()
	if _, errs, code := run(t, home, "key", "new"); code != 0 {
		t.Fatalf("key new: %s", errs)
	}
	out, errs, code := run(t, home, "twin", "create", "--grid", grid, "--json")
	if code != 0 {
		t.Fatalf("twin create: exit %d: %s", code, errs)
	}
	var tw registry.Twin
	if err := json.Unmarshal([]byte(out), &tw); err != nil || tw.ID == 0 {
		t.Fatalf("twin create output %q: %v", out, err)
	}
	// The new twin's rights start with its next connection, once the
	// registry has seen it: wait for that.
	testutil.Eventually(t, 5*time.Second, "the registry to see the new twin", func() (bool, error) {
		_, errs, code := run(t, home, "twin", "show", "--grid", grid)
		return code == 0, fmt.Errorf("twin show: %s", errs)
	})
	return home, tw.ID
}

// mustRun runs zosctl and fails unless it exits 0.
func mustRun(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, errs, code := run(t, home, args...)
	if code != 0 {
		t.Fatalf("zosctl %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestGridCommands(t *testing.T) {
	grid := startGrid(t)
	g := "--grid=" + grid
	ctx := context.Background()

	farmer, farmerTwin := newHome(t, grid)
	if out := mustRun(t, farmer, "twin", "create", g); !strings.Contains(out, "twin:") {
		t.Fatalf("twin create again: %q", out)
	}
	var farm registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "create", "farm1", g, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	if farm.TwinID != farmerTwin || farm.Name != "farm1" {
		t.Fatalf("farm: got %+v, want farm1 of twin %d", farm, farmerTwin)
	}
	fid := itoa(uint64(farm.ID))
	mustRun(t, farmer, "farm", "add-ip", "--farm", fid, "185.1.1.2/24", "--gw", "185.1.1.1", g)
	mustRun(t, farmer, "farm", "add-ip", "185.1.1.3/24", "--farm", fid, "--gw", "185.1.1.1", g)
	if out := mustRun(t, farmer, "farm", "list", g); !strings.Contains(out, "farm1") || !strings.Contains(out, "2/2") {
		t.Fatalf("farm list: %q", out)
	}

	// A node registers (as the node does, through the registry client),
	// with the farmer's consent.
	farmToken := strings.TrimSpace(mustRun(t, farmer, "farm", "token", fid, g))
	nodeKey, _ := identity.Generate()
	nnc, err := rmb.Connect(grid, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	defer nnc.Close()
	if _, err := registry.NewClient(nnc, nodeKey).CreateTwin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	nnc.Close()
	var node registry.Node
	testutil.Eventually(t, 5*time.Second, "registering node", func() (bool, error) {
		nnc, err := rmb.Connect(grid, nodeKey)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nnc.Close)
		node, err = registry.NewClient(nnc, nodeKey).RegisterNode(ctx, registry.NodeRegistration{
			FarmID: farm.ID, FarmToken: farmToken, Total: registry.Resources{CRU: 8, MRU: 16 << 30, SRU: 100 << 30}, Location: registry.Location{Country: "BE"}})
		return err == nil, err
	})
	nid := itoa(uint64(node.ID))

	user, userTwin := newHome(t, grid)
	var nodes []nodeView
	if err := json.Unmarshal([]byte(mustRun(t, user, "node", "list", g, "--json", "--farm", fid)), &nodes); err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != node.ID || nodes[0].Status != "up" {
		t.Fatalf("node list: got %+v", nodes)
	}
	if out := mustRun(t, user, "node", "list", g, "--status", "down"); strings.Contains(out, "BE") {
		t.Fatalf("node list --status down shows the up node: %q", out)
	}
	if out := mustRun(t, user, "node", "list", g, "--country", "be"); !strings.Contains(out, "BE") {
		t.Fatalf("node list --country be: %q", out)
	}
	if out := mustRun(t, user, "node", "show", nid, g); !strings.Contains(out, "status:   up") || !strings.Contains(out, "cru 8") {
		t.Fatalf("node show: %q", out)
	}

	// Names.
	if out := mustRun(t, user, "name", "reserve", "myapp", g); !strings.Contains(out, "myapp") {
		t.Fatalf("name reserve: %q", out)
	}
	if _, errs, code := run(t, farmer, "name", "reserve", "myapp", g); code != 1 || !strings.Contains(errs, "name taken") {
		t.Fatalf("second reservation: exit %d, %q", code, errs)
	}

	// Contracts: the user's node contract with a public IP.
	uk, err := identity.Load(filepath.Join(user, "key.json"))
	if err != nil {
		t.Fatal(err)
	}
	unc, err := rmb.Connect(grid, uk)
	if err != nil {
		t.Fatal(err)
	}
	defer unc.Close()
	c, err := registry.NewClient(unc, uk).CreateNodeContract(ctx, node.ID, "abcdef", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	var cs []registry.Contract
	if err := json.Unmarshal([]byte(mustRun(t, user, "contract", "list", g, "--json")), &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 || cs[1].ID != c.ID || cs[1].TwinID != userTwin {
		t.Fatalf("contract list: got %+v", cs)
	}
	if out := mustRun(t, farmer, "contract", "list", g); strings.Contains(out, "abcdef") {
		t.Fatalf("farmer sees the user's contract without --all: %q", out)
	}
	if out := mustRun(t, farmer, "contract", "list", "--all", g); !strings.Contains(out, "abcdef") || !strings.Contains(out, "185.1.1.2/24") {
		t.Fatalf("contract list --all: %q", out)
	}
	cid := itoa(c.ID)
	if _, errs, code := run(t, farmer, "contract", "cancel", cid, g); code != 1 || !strings.Contains(errs, "unauthorized") {
		t.Fatalf("farmer cancels user's contract: exit %d, %q", code, errs)
	}
	mustRun(t, user, "contract", "cancel", cid, g)
	if out := mustRun(t, user, "contract", "list", "--state", "canceled", g); !strings.Contains(out, cid) {
		t.Fatalf("canceled contract not listed: %q", out)
	}
	if out := mustRun(t, farmer, "farm", "list", g); !strings.Contains(out, "2/2") {
		t.Fatalf("ip not freed: %q", out)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"farm", "add-ip", "185.1.1.4/24", g},
		{"farm", "create", g},
		{"node", "show", "x", g},
		{"node", "list", "--status", "sideways", g},
		{"contract", "cancel", g},
	} {
		if _, _, code := run(t, user, args...); code != 2 {
			t.Errorf("zosctl %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
	// No key: a clear hint.
	if _, errs, code := run(t, t.TempDir(), "twin", "create", g); code != 1 || !strings.Contains(errs, "zosctl key new") {
		t.Fatalf("twin create without key: exit %d, %q", code, errs)
	}
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}
