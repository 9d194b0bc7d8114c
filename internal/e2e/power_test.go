package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestHostedStandby: a hosted node told to go to standby while it has a
// deployment refuses (the reason on its record, the node and the
// deployment untouched); once the deployment is gone it reports standby
// and its process ends cleanly (hosted mode: the host decides what else
// to do), the registry showing it down and the explorer's status standby.
func TestHostedStandby(t *testing.T) {
	requireNodePrereqs(t)
	g := startGrid(t)
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	n := startNode(t, g, farmer.farmToken(farm.ID))
	n.waitRegistered(farmer)
	u := newUser(t, g)
	id := strconv.Itoa(int(n.id))
	record := func() registry.Node {
		var v registry.Node
		farmer.json(&v, "node", "show", id)
		return v
	}

	var d gridtypes.Deployment
	u.json(&d, "deploy", "zdb", "--node", id, "--size", "1M", "--password", "pw", "--name", "db")
	farmer.mustRun("node", "standby", id)
	testutil.Eventually(t, 30*time.Second, "the standby refusal on the node's record", func() (bool, error) {
		r := record()
		return r.PowerRefused == "node busy: 1 deployments", fmt.Errorf("power %q refused %q", r.Power, r.PowerRefused)
	})
	if r := record(); r.Power != registry.PowerUp {
		t.Fatalf("after the refusal: got power %q, want up", r.Power)
	}
	select {
	case <-n.proc.done:
		t.Fatalf("the node stopped although it refused standby:\n%s", n.proc.output())
	default:
	}
	var got gridtypes.Deployment
	u.json(&got, "deployment", "get", strconv.FormatUint(d.ContractID, 10))
	if wl := got.Get("db"); wl == nil || wl.Result.State != gridtypes.StateOk {
		t.Fatalf("after the refused standby: workload %+v, want ok", wl)
	}

	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	farmer.mustRun("node", "standby", id)
	select {
	case <-n.proc.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("the idle node did not go to standby:\n%s", n.proc.output())
	}
	if code := n.proc.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(n.proc.output(), "msg=standby_exit") {
		t.Fatalf("node exit %d, want 0 after standby_exit", code)
	}
	if r := record(); r.Power != registry.PowerDown || r.PowerRefused != "" {
		t.Fatalf("after standby: got power %q refused %q, want down, none", r.Power, r.PowerRefused)
	}
	if out := farmer.mustRun("node", "list", "--status", "standby", "--farm", strconv.Itoa(int(farm.ID))); !strings.Contains(out, "standby") {
		t.Fatalf("node list --status standby: got %q, want the node", out)
	}
}
