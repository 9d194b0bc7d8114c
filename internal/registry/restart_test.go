package registry

import (
	"context"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/testutil"
)

// TestServerRestart restarts the NATS server under a running registry:
// while it is down requests fail with an error; after it is back every
// acknowledged record is there and writes go on.
func TestServerRestart(t *testing.T) {
	testutil.NoLeaks(t)
	dir := t.TempDir()
	port := testutil.FreePort(t)
	cfg := natsd.Config{StoreDir: dir, Port: port}
	srv, err := natsd.Start(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown() })
	nc := connect(t, srv.ClientURL())
	startService(t, nc, Config{Replicas: 1})
	g := &grid{nc: nc}
	ctx := context.Background()
	_, _, _, node := g.farmWithNode(t, "farm1", 1)
	u := g.user(t)
	c, err := u.c.CreateNodeContract(ctx, node.ID, "aa", "", 1)
	if err != nil {
		t.Fatal(err)
	}

	srv.Shutdown()
	dctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = u.c.Contract(dctx, c.ID)
	cancel()
	if err == nil {
		t.Fatal("read succeeded with the server down")
	}
	t.Logf("while down: %v", err)

	srv, err = natsd.Start(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatalf("restarting: %v", err)
	}
	testutil.Eventually(t, 20*time.Second, "the registry to be back after restart", func() (bool, error) {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		got, err := u.c.Contract(rctx, c.ID)
		cancel()
		if err == nil && (got.State != StateCreated || len(got.PublicIPs) != 1) {
			t.Fatalf("contract after restart: %+v", got)
		}
		return err == nil, err
	})
	c2, err := u.c.CreateNodeContract(ctx, node.ID, "bb", "", 0)
	if err != nil {
		t.Fatalf("write after restart: %v", err)
	}
	if c2.ID <= c.ID {
		t.Fatalf("id %d after restart reuses the counter (last %d)", c2.ID, c.ID)
	}
	_, err = u.c.CreateNodeContract(ctx, node.ID, "cc", "", 1)
	wantErr(t, "ip held before restart", err, ErrNoFreeIP)
}
