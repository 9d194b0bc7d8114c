package cli

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// olderNode serves a registered node's twin with the API of a node that
// predates zos.deployment.wait: deploy keeps the deployment, get answers
// it in init the first two times, then ok.
type olderNode struct {
	mu   sync.Mutex // guards d and gets
	d    *gridtypes.Deployment
	gets int
}

func (n *olderNode) deploy(_ context.Context, _ uint32, payload []byte) (any, error) {
	var d gridtypes.Deployment
	if err := json.Unmarshal(payload, &d); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.d = &d
	return nil, nil
}

func (n *olderNode) get(context.Context, uint32, []byte) (any, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.d == nil {
		return nil, errors.New("deployment not found")
	}
	n.gets++
	state := gridtypes.StateInit
	if n.gets > 2 {
		state = gridtypes.StateOk
	}
	for i := range n.d.Workloads {
		n.d.Workloads[i].Result = gridtypes.Result{State: state, Data: json.RawMessage(`{}`)}
	}
	return n.d, nil
}

// A deploy to a node that does not know zos.deployment.wait (an older
// version) falls back to polling zos.deployment.get until the deployment
// settles, and succeeds.
func TestDeployWaitsOnOlderNode(t *testing.T) {
	grid := startGrid(t)
	farmer, _ := newHome(t, grid)
	node, key := registerKeyedNode(t, grid, farmer)
	nc, err := rmb.Connect(grid, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	older := &olderNode{}
	srv := rmb.NewServer(nc, node.TwinID, key, registry.NewClient(nc, key), testutil.Logger(t))
	srv.Handle(nodeapi.CmdDeploy, older.deploy)
	srv.Handle(nodeapi.CmdGet, older.get)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	user, _ := newHome(t, grid)
	out, errs, code := run(t, user, "deploy", "zdb", "--node", itoa(uint64(node.ID)), "--size", "1G", "--timeout", "60s", "--grid", grid)
	if code != 0 {
		t.Fatalf("got exit %d, want 0:\n%s\n%s", code, out, errs)
	}
	older.mu.Lock()
	gets := older.gets
	older.mu.Unlock()
	if gets < 3 {
		t.Errorf("got %d zos.deployment.get calls, want at least 3 (polled until ok)", gets)
	}
	if !strings.Contains(out+errs, "ok") {
		t.Errorf("got %q, want the workload shown ok", out+errs)
	}
}
