package registry

import (
	"context"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// TestDebianNATSServer runs the registry against Debian's nats-server
// binary: zgrid --nats must work with a stock server.
func TestDebianNATSServer(t *testing.T) {
	bin := testutil.RequireBinary(t, "nats-server")
	port := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	testutil.StartListening(t, addr, bin, "-js", "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-sd", t.TempDir())
	if v, err := exec.Command(bin, "--version").CombinedOutput(); err == nil {
		t.Logf("%s", v)
	}
	ctx := context.Background()
	url := "nats://" + addr
	nc := connect(t, url)
	startService(t, nc, Config{Replicas: 1})
	g := &grid{nc: nc}
	_, _, _, node := g.farmWithNode(t, "debian", 2)
	u := g.user(t)
	c, err := u.c.CreateNodeContract(ctx, node.ID, "abcd", "", 2)
	if err != nil {
		t.Fatalf("contract: %v", err)
	}
	_, err = u.c.CreateNodeContract(ctx, node.ID, "abcd", "", 1)
	wantErr(t, "third ip", err, ErrNoFreeIP)
	if err := u.c.CancelContract(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	ch, err := u.c.WatchNode(wctx, node.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{EventContractCreated, EventContractCanceled} {
		ev, ok := <-ch
		if !ok || ev.Kind != want {
			t.Fatalf("event: got %+v (open %v), want %s", ev, ok, want)
		}
	}
}
