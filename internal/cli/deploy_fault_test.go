package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// registerSilentNode registers a node in a new farm of farmer and returns
// its id: a node of the grid that is off (nothing serves its twin).
func registerSilentNode(t *testing.T, grid, farmer string) uint32 {
	t.Helper()
	node, _ := registerKeyedNode(t, grid, farmer)
	return node.ID
}

// registerKeyedNode registers a node in a new farm of farmer and returns it
// with its key; nothing serves its twin.
func registerKeyedNode(t *testing.T, grid, farmer string) (registry.Node, identity.Key) {
	t.Helper()
	ctx := context.Background()
	var farm registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "create", "silentfarm", "--grid", grid, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(mustRun(t, farmer, "farm", "token", itoa(uint64(farm.ID)), "--grid", grid))
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := rmb.Connect(grid, key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = registry.NewClient(nc, key).CreateTwin(ctx, "")
	nc.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Connect again with the twin's rights.
	var node registry.Node
	testutil.Eventually(t, 10*time.Second, "registering the node", func() (bool, error) {
		nc, err := rmb.Connect(grid, key)
		if err != nil {
			return false, err
		}
		defer nc.Close()
		node, err = registry.NewClient(nc, key).RegisterNode(ctx, registry.NodeRegistration{
			FarmID: farm.ID, FarmToken: token, Total: registry.Resources{CRU: 8, MRU: 16 << 30, SRU: 100 << 30, HRU: 100 << 30}})
		return err == nil, err
	})
	return node, key
}

// A deploy to a node that never answers asks again until its --timeout,
// then says what became of its contract (canceled, so the grid holds
// nothing for a deployment that never reached the node) rather than only
// that time ran out.
func TestDeployToSilentNodeSaysWhatItKnows(t *testing.T) {
	grid := startGrid(t)
	farmer, _ := newHome(t, grid)
	node := registerSilentNode(t, grid, farmer)
	user, _ := newHome(t, grid)

	start := time.Now()
	_, errs, code := run(t, user, "deploy", "zdb", "--node", itoa(uint64(node)), "--size", "1G", "--timeout", "3s", "--grid", grid)
	took := time.Since(start)
	t.Logf("zosctl deploy (exit %d after %s):\n%s", code, took.Round(time.Millisecond), errs)
	if code != 1 {
		t.Fatalf("got exit %d, want 1:\n%s", code, errs)
	}
	for _, want := range []string{"twin unreachable", "asking again until the timeout", "sending the deployment", "canceled"} {
		if !strings.Contains(errs, want) {
			t.Errorf("got %q, want it to contain %q", errs, want)
		}
	}
	if took > 30*time.Second {
		t.Errorf("zosctl took %s with --timeout 3s", took)
	}
	m := regexp.MustCompile(`contract (\d+) canceled`).FindStringSubmatch(errs)
	if m == nil {
		t.Fatalf("got %q, want the contract named canceled", errs)
	}
	var c registry.Contract
	if err := json.Unmarshal([]byte(mustRun(t, user, "contract", "show", m[1], "--grid", grid, "--json")), &c); err != nil {
		t.Fatal(err)
	}
	if c.State != registry.StateCanceled {
		t.Errorf("contract %s is %s on the grid, zosctl said canceled", m[1], c.State)
	}
}
