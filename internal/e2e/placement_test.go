package e2e

import (
	"strconv"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestPlacement: on a grid of two hosted nodes with different HDDs, node
// search tells them apart; a namespace deployed without --node lands on
// the node that fits it, and the CLI says which; one no node fits is
// refused with the reasons and creates no contract; one a node refuses
// (asked with --node) has its contract canceled.
func TestPlacement(t *testing.T) {
	requireNodePrereqs(t)
	g := startGrid(t)
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	token := farmer.farmToken(farm.ID)
	small := startNode(t, g, token)
	big := startNode(t, g, token, "--disk", "hdd:8G")
	small.waitRegistered(farmer)
	big.waitRegistered(farmer)
	u := newUser(t, g)

	var views []struct {
		ID   uint32 `json:"id"`
		Free struct {
			HRU uint64 `json:"hru"`
		} `json:"free_resources"`
	}
	u.json(&views, "node", "list", "--free-hru", "6G")
	if len(views) != 1 || views[0].ID != big.id {
		t.Fatalf("node list --free-hru 6G: got %+v, want node %d only", views, big.id)
	}

	// Fits only the big node.
	out, errs, code := u.run("deploy", "zdb", "--size", "5G", "--password", "pw")
	if code != 0 {
		t.Fatalf("deploy zdb without --node: exit %d\n%s%s", code, out, errs)
	}
	if want := "picked node " + strconv.Itoa(int(big.id)); !strings.Contains(errs, want) || !strings.Contains(out, "zdb (zdb): ok") {
		t.Fatalf("deploy zdb without --node: %q %q, want %q and the namespace ok", out, errs, want)
	}
	var cs []registry.Contract
	u.json(&cs, "contract", "list")
	if len(cs) != 1 || cs[0].NodeID != big.id {
		t.Fatalf("contracts: got %+v, want one on node %d", cs, big.id)
	}
	active := func() int {
		var cs []registry.Contract
		u.json(&cs, "contract", "list", "--state", "created")
		return len(cs)
	}
	// Fits no node: refused before anything is made.
	if _, errs, code := u.run("deploy", "zdb", "--size", "50G"); code != 1 || !strings.Contains(errs, "no node fits") || !strings.Contains(errs, "HDD free") {
		t.Fatalf("deploy zdb 50G: exit %d, %q", code, errs)
	}
	// The small node refuses what it has no room for: the contract goes.
	_, errs, code = u.run("deploy", "zdb", "--node", strconv.Itoa(int(small.id)), "--size", "5G", "--name", "big")
	if code != 1 || !strings.Contains(errs, "canceled") {
		t.Fatalf("deploy zdb 5G on the small node: exit %d, %q", code, errs)
	}
	if n := active(); n != 1 {
		t.Fatalf("active contracts: got %d, want 1 (the first namespace)", n)
	}
}
