package registry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/testutil"
)

// startServer starts an embedded server on a random loopback port, shut
// down at cleanup.
func startServer(t testing.TB) *natsd.Server {
	t.Helper()
	s, err := natsd.Start(natsd.Config{StoreDir: t.TempDir(), Port: natsd.RandomPort}, testutil.Logger(t))
	if err != nil {
		t.Fatalf("starting nats: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// connect connects to urls, closed at cleanup.
func connect(t testing.TB, urls string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatalf("connecting to %s: %v", urls, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startService runs a registry service on nc until cleanup.
func startService(t testing.TB, nc *nats.Conn, cfg Config) *Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	svc, err := NewService(ctx, cfg, nc, testutil.Logger(t))
	if err != nil {
		t.Fatalf("starting registry: %v", err)
	}
	testutil.Go(t, "registry run", svc.Run)
	waitServing(t, nc)
	return svc
}

// waitServing waits until a registry answers on nc.
func waitServing(t testing.TB, nc *nats.Conn) {
	t.Helper()
	c := NewClient(nc, identity.Key{})
	testutil.Eventually(t, 30*time.Second, "the registry to serve", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.EventsInfo(ctx)
		cancel()
		return err == nil, err
	})
}

// grid is a single-server registry for tests.
type grid struct {
	srv *natsd.Server
	nc  *nats.Conn
	svc *Service
}

func newGrid(t testing.TB) *grid {
	t.Helper()
	srv := startServer(t)
	nc := connect(t, srv.ClientURL())
	svc := startService(t, nc, Config{Replicas: 1})
	return &grid{srv: srv, nc: nc, svc: svc}
}

// user is a key with its client and twin.
type user struct {
	key  identity.Key
	c    *Client
	twin Twin
}

func (g *grid) user(t testing.TB) *user {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(g.nc, k)
	tw, err := c.CreateTwin(context.Background(), "")
	if err != nil {
		t.Fatalf("creating twin: %v", err)
	}
	return &user{key: k, c: c, twin: tw}
}

// farmWithNode makes a farmer with a farm of ips public IPs and a node.
func (g *grid) farmWithNode(t testing.TB, name string, ips int) (farmer *user, farm Farm, nodeUser *user, node Node) {
	t.Helper()
	ctx := context.Background()
	farmer = g.user(t)
	farm, err := farmer.c.CreateFarm(ctx, name)
	if err != nil {
		t.Fatalf("creating farm: %v", err)
	}
	for i := range ips {
		if err := farmer.c.AddFarmIP(ctx, farm.ID, fmt.Sprintf("185.1.%d.%d/16", i/200, i%200+2), "185.1.255.1"); err != nil {
			t.Fatalf("adding ip: %v", err)
		}
	}
	nodeUser = g.user(t)
	node, err = nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, FarmToken: farmToken(t, farmer, farm.ID),
		Total: Resources{CRU: 4, MRU: 8 << 30}})
	if err != nil {
		t.Fatalf("registering node: %v", err)
	}
	return farmer, farm, nodeUser, node
}

// wantErr fails unless err wraps want.
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

// farmToken is a token of farmer's farm valid for an hour.
func farmToken(t testing.TB, farmer *user, farm uint32) string {
	t.Helper()
	tok, err := NewFarmToken(farmer.key, farm, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("making farm token: %v", err)
	}
	return tok.String()
}
