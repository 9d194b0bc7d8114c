package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// twinConn connects as key, creating its twin first if needed, and returns
// a connection with the twin's rights.
func twinConn(t *testing.T, url string, key identity.Key, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := rmb.Connect(url, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.NewClient(nc, key).CreateTwin(context.Background(), ""); err != nil {
		nc.Close()
		t.Fatalf("CreateTwin: %v", err)
	}
	nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err = rmb.Connect(url, key, opts...)
		if err != nil {
			t.Fatal(err)
		}
		// A registered twin may read; an unregistered key may not.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = registry.NewClient(nc, key).TwinByKey(ctx, key.Public())
		cancel()
		if err == nil {
			t.Cleanup(nc.Close)
			return nc
		}
		nc.Close()
		if time.Now().After(deadline) {
			t.Fatalf("twin rights not granted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestAuthRules(t *testing.T) {
	a := startZgrid(t)
	ctx := context.Background()
	k, _ := identity.Generate()
	var mu sync.Mutex
	var asyncErrs []string // guarded by mu
	nc := twinConn(t, a.NATS, k, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		asyncErrs = append(asyncErrs, err.Error())
		mu.Unlock()
	}))
	c := registry.NewClient(nc, k)
	farm, err := c.CreateFarm(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterNode(ctx, registry.NodeRegistration{FarmID: farm.ID}); err != nil {
		t.Fatal(err)
	}
	node, err := c.NodeByTwin(ctx, farm.TwinID)
	if err != nil {
		t.Fatal(err)
	}
	// A twin watches its node's events through the events stream.
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	events, err := c.WatchNode(wctx, node.ID, 0)
	if err != nil {
		t.Fatalf("WatchNode as a twin: %v", err)
	}
	ct, err := c.CreateNodeContract(ctx, node.ID, "aa", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	first := <-events
	if first.Kind != registry.EventContractCreated || first.Contract == nil || first.Contract.ID != ct.ID {
		t.Fatalf("event: got %+v", first)
	}
	// Resuming from a sequence reads the stream's state: allowed too.
	resumed, err := c.WatchNode(wctx, node.ID, first.Seq)
	if err != nil {
		t.Fatalf("WatchNode from a sequence as a twin: %v", err)
	}
	if err := c.CancelContract(ctx, ct.ID); err != nil {
		t.Fatal(err)
	}
	if ev := <-resumed; ev.Kind != registry.EventContractCanceled {
		t.Fatalf("resumed event: got %+v", ev)
	}
	if ev := <-events; ev.Kind != registry.EventContractCanceled {
		t.Fatalf("live event: got %+v", ev)
	}

	// A twin may neither write the KV buckets directly nor forge events.
	forged := fmt.Sprintf(`{"contract_id":%d,"type":"node","twin_id":999,"state":"created"}`, ct.ID)
	for _, subj := range []string{fmt.Sprintf("$KV.zos_contracts.%d", ct.ID), fmt.Sprintf("registry.events.node.%d", node.ID)} {
		if err := nc.Publish(subj, []byte(forged)); err != nil {
			t.Fatal(err)
		}
	}
	_ = nc.Flush()
	time.Sleep(200 * time.Millisecond)
	got, err := c.Contract(ctx, ct.ID)
	if err != nil || got.State != registry.StateCanceled || got.TwinID != ct.TwinID {
		t.Fatalf("contract after direct KV write: got %+v, %v", got, err)
	}
	select {
	case ev := <-events:
		t.Fatalf("forged event delivered: %+v", ev)
	case <-time.After(300 * time.Millisecond):
	}
	mu.Lock()
	n := len(asyncErrs)
	all := strings.Join(asyncErrs, "; ")
	mu.Unlock()
	if n < 2 || !strings.Contains(strings.ToLower(all), "permissions violation") {
		t.Fatalf("want permission violations, got %q", all)
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// TestZgridCluster runs three zgrid processes (in-process) as a cluster
// with replicas 3, stops one, and checks the grid goes on.
func TestZgridCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test in -short")
	}
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	sysKey := filepath.Join(t.TempDir(), "system.key")
	type member struct {
		addrs  Addrs
		cancel context.CancelFunc
		done   chan error
	}
	members := make([]*member, 3)
	readyCh := make(chan int, 3)
	for i := range members {
		m := &member{done: make(chan error, 1)}
		members[i] = m
		cfg := Config{DataDir: t.TempDir(), Listen: "127.0.0.1", Port: natsd.RandomPort, HTTPPort: 0, Replicas: 3,
			Name: fmt.Sprintf("z%d", i), ClusterName: "zgrid", ClusterPort: ports[i], Routes: routes, Auth: true, SystemKey: sysKey,
			Ready: func(a Addrs) { m.addrs = a; readyCh <- i }}
		if i == 0 {
			// Create the shared system key before the others load it.
			if _, _, err := identity.LoadOrCreate(sysKey); err != nil {
				t.Fatal(err)
			}
		}
		var ctx context.Context
		ctx, m.cancel = context.WithCancel(context.Background())
		go func() { m.done <- run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.cancel()
		}
		for i, m := range members {
			if err := <-m.done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("zgrid %d: %v", i, err)
			}
		}
	})
	for range members {
		select {
		case <-readyCh:
		case <-time.After(120 * time.Second):
			t.Fatal("cluster not ready")
		}
	}
	var urls []string
	for _, m := range members {
		urls = append(urls, m.addrs.NATS)
	}
	k, _ := identity.Generate()
	nc := twinConn(t, strings.Join(urls, ","), k, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	c := registry.NewClient(nc, k)
	ctx := context.Background()
	farm, err := c.CreateFarm(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	node, err := c.RegisterNode(ctx, registry.NodeRegistration{FarmID: farm.ID})
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for i := range 5 {
		ct, err := c.CreateNodeContract(ctx, node.ID, fmt.Sprintf("%02x", i), "", 0)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ct.ID)
	}
	// Stop the member the client is on.
	victim := 0
	for i, m := range members {
		if m.addrs.NATS == nc.ConnectedUrl() {
			victim = i
		}
	}
	members[victim].cancel()
	if err := <-members[victim].done; err != nil {
		t.Fatalf("stopping zgrid %d: %v", victim, err)
	}
	members[victim].done <- nil // for the cleanup
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 5; {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ct, err := c.CreateNodeContract(cctx, node.ID, fmt.Sprintf("%02x", 10+i), "", 0)
		cancel()
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("writes after losing a member: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
			continue
		}
		ids = append(ids, ct.ID)
		i++
	}
	all, err := c.Contracts(ctx, registry.ContractFilter{NodeID: node.ID})
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, ct := range all {
		have[ct.ID] = true
	}
	for _, id := range ids {
		if !have[id] {
			t.Fatalf("contract %d lost (have %d contracts)", id, len(all))
		}
	}
}
