package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/testutil"
)

// startCluster starts n servers routed to each other on loopback. The
// route ports are free when picked, but another test may take one before
// its server listens (the server then never gets ready): the cluster is
// then started again on new ports, up to three times.
func startCluster(t *testing.T, n int) []*natsd.Server {
	t.Helper()
	var err error
	for range 3 {
		var srvs []*natsd.Server
		if srvs, err = tryCluster(t, n); err == nil {
			for _, s := range srvs {
				t.Cleanup(s.Shutdown)
			}
			return srvs
		}
		t.Logf("starting cluster: %v; again on other ports", err)
	}
	t.Fatalf("starting cluster: %v", err)
	return nil
}

// tryCluster starts n routed servers, or none.
func tryCluster(t *testing.T, n int) ([]*natsd.Server, error) {
	ports := testutil.FreePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	srvs := make([]*natsd.Server, n)
	var eg errgroup.Group
	for i := range n {
		eg.Go(func() error {
			s, err := natsd.Start(natsd.Config{
				StoreDir:    t.TempDir(),
				Name:        fmt.Sprintf("n%d", i),
				Port:        natsd.RandomPort,
				ClusterName: "test",
				ClusterPort: ports[i],
				Routes:      routes,
			}, testutil.Logger(t))
			srvs[i] = s
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		for _, s := range srvs {
			if s != nil {
				s.Shutdown()
			}
		}
		return nil, err
	}
	return srvs, nil
}

// retrying retries f while the cluster recovers (timeouts, no responders,
// JetStream leaderless), up to 20 s; registry refusals end it at once.
func retrying(t *testing.T, what string, f func(ctx context.Context) error) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, what, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := f(ctx)
		cancel()
		var re *remoteError
		if errors.As(err, &re) && !errors.Is(err, ErrInternal) {
			t.Fatalf("%s: %v", what, err)
		}
		return err == nil, err
	})
}

func TestClusterSurvivesServerLoss(t *testing.T) {
	testutil.NoLeaks(t)
	testutil.SkipShort(t, "cluster test")
	start := time.Now()
	srvs := startCluster(t, 3)
	t.Logf("cluster up after %s", time.Since(start))
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	// One registry service per server, as three zgrid processes.
	var eg errgroup.Group
	for i := range srvs {
		order := append([]string{urls[i]}, append(append([]string{}, urls[:i]...), urls[i+1:]...)...)
		nc, err := nats.Connect(strings.Join(order, ","), nats.DontRandomize(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		eg.Go(func() error { startService(t, nc, Config{Replicas: 3}); return nil })
	}
	_ = eg.Wait()
	t.Logf("registry serving after %s", time.Since(start))

	// Clients on the server that will die.
	nc := connect(t, strings.Join(urls, ","))
	g := &grid{nc: nc}
	ctx := context.Background()
	_, farm, _, node := g.farmWithNode(t, "farm1", 4)
	u := g.user(t)
	var ids []uint64
	for i := range 10 {
		ips := uint32(0)
		if i < 4 {
			ips = 1
		}
		c, err := u.c.CreateNodeContract(ctx, node.ID, fmt.Sprintf("%02x", i), "", ips)
		if err != nil {
			t.Fatalf("contract %d: %v", i, err)
		}
		ids = append(ids, c.ID)
	}

	// Kill the server the client is connected to.
	victim := -1
	for i, s := range srvs {
		if s.ClientURL() == nc.ConnectedUrl() {
			victim = i
		}
	}
	if victim < 0 {
		victim = 0
	}
	t.Logf("killing server %d (%s)", victim, urls[victim])
	srvs[victim].Shutdown()
	killed := time.Now()

	// Reads and writes go on.
	for i := range 10 {
		var c Contract
		retrying(t, fmt.Sprintf("contract after kill %d", i), func(ctx context.Context) error {
			var err error
			c, err = u.c.CreateNodeContract(ctx, node.ID, fmt.Sprintf("%02x", 100+i), "", 0)
			return err
		})
		ids = append(ids, c.ID)
	}
	t.Logf("10 writes done %s after the kill", time.Since(killed))
	// No record lost, no id reused.
	seen := map[uint64]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("id %d reused", id)
		}
		seen[id] = true
		retrying(t, fmt.Sprintf("read contract %d", id), func(ctx context.Context) error {
			_, err := u.c.Contract(ctx, id)
			return err
		})
	}
	var all []Contract
	retrying(t, "list contracts", func(ctx context.Context) error {
		var err error
		all, err = u.c.Contracts(ctx, ContractFilter{TwinID: u.twin.ID})
		return err
	})
	if len(all) < len(ids) {
		t.Fatalf("got %d contracts after the kill, want at least %d", len(all), len(ids))
	}
	var f Farm
	retrying(t, "read farm", func(ctx context.Context) error {
		var err error
		f, err = u.c.Farm(ctx, farm.ID)
		return err
	})
	held := 0
	for _, ip := range f.PublicIPs {
		if ip.ContractID != 0 {
			held++
		}
	}
	if held != 4 {
		t.Fatalf("%d farm ips held after the kill, want 4", held)
	}
}
