package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
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
	testutil.Eventually(t, 10*time.Second, "twin rights", func() (bool, error) {
		nc, err = rmb.Connect(url, key, opts...)
		if err != nil {
			t.Fatal(err)
		}
		// A registered twin may read; an unregistered key may not.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = registry.NewClient(nc, key).TwinByKey(ctx, key.Public())
		cancel()
		if err != nil {
			nc.Close()
			return false, err
		}
		return true, nil
	})
	t.Cleanup(nc.Close)
	return nc
}

// farmWithNode creates farm "f" of k's twin and registers that twin as a
// node of it.
func farmWithNode(t *testing.T, c *registry.Client, k identity.Key) (registry.Farm, registry.Node) {
	t.Helper()
	ctx := context.Background()
	farm, err := c.CreateFarm(ctx, "f")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := registry.NewFarmToken(k, farm.ID, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	node, err := c.RegisterNode(ctx, registry.NodeRegistration{FarmID: farm.ID, FarmToken: tok.String()})
	if err != nil {
		t.Fatal(err)
	}
	return farm, node
}

// Windows in which something must not happen: nothing signals that it
// did not, so the tests give it this long.
const (
	// forgeryWindow is how long forged KV writes and events published
	// straight to the server get to change a contract.
	forgeryWindow = 200 * time.Millisecond
	// forgedEventWindow is how long a forged event gets to reach a
	// watcher.
	forgedEventWindow = 300 * time.Millisecond
	// rogueAttackWindow is how long a rogue nats-server's clients spy on
	// and forge into a grid that refused to route to it.
	rogueAttackWindow = 4 * time.Second
)

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
	farm, _ := farmWithNode(t, c, k)
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
	// Nothing to wait for: the forgeries must change nothing, and this is
	// how long they get to try.
	testutil.Never(t, forgeryWindow, "a direct KV write or forged event changed the contract", func() (bool, error) {
		got, err := c.Contract(ctx, ct.ID)
		if err != nil || got.State != registry.StateCanceled || got.TwinID != ct.TwinID {
			return true, fmt.Errorf("got %+v, %v", got, err)
		}
		return false, nil
	})
	select {
	case ev := <-events:
		t.Fatalf("forged event delivered: %+v", ev)
	case <-time.After(forgedEventWindow):
	}
	mu.Lock()
	n := len(asyncErrs)
	all := strings.Join(asyncErrs, "; ")
	mu.Unlock()
	if n < 2 || !strings.Contains(strings.ToLower(all), "permissions violation") {
		t.Fatalf("want permission violations, got %q", all)
	}
}

// member is one zgrid process of a test cluster.
type member struct {
	addrs       gridd.Addrs
	clusterPort int
	cancel      context.CancelFunc
	done        chan error
}

// startZgridCluster runs n zgrid processes (in-process) as a cluster on
// loopback with replicas n, sharing one system key as operators do; they
// stop at cleanup.
func startZgridCluster(t *testing.T, n int) []*member {
	t.Helper()
	ports := testutil.FreePorts(t, n)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	sysKey := filepath.Join(t.TempDir(), "system.key")
	// Create the shared system key before the members load it.
	if _, _, err := identity.LoadOrCreate(sysKey); err != nil {
		t.Fatal(err)
	}
	members := make([]*member, n)
	readyCh := make(chan int, n)
	for i := range members {
		m := &member{clusterPort: ports[i], done: make(chan error, 1)}
		members[i] = m
		cfg := gridd.Config{DataDir: t.TempDir(), Listen: "127.0.0.1", Port: natsd.RandomPort, HTTPPort: 0, Replicas: n,
			Name: fmt.Sprintf("z%d", i), ClusterName: "zgrid", ClusterPort: ports[i], Routes: routes, Auth: true, SystemKey: sysKey,
			Ready: func(a gridd.Addrs) { m.addrs = a; readyCh <- i }}
		var ctx context.Context
		ctx, m.cancel = context.WithCancel(context.Background())
		go func() { m.done <- gridd.Run(ctx, cfg, testutil.Logger(t)) }()
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
	return members
}

// clientURLs are the NATS client URLs of members, comma-separated.
func clientURLs(members []*member) string {
	var urls []string
	for _, m := range members {
		urls = append(urls, m.addrs.NATS)
	}
	return strings.Join(urls, ",")
}

// TestZgridCluster runs three zgrid processes (in-process) as a cluster
// with replicas 3, stops one, and checks the grid goes on.
func TestZgridCluster(t *testing.T) {
	testutil.SkipShort(t, "cluster test")
	members := startZgridCluster(t, 3)
	k, _ := identity.Generate()
	nc := twinConn(t, clientURLs(members), k, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	c := registry.NewClient(nc, k)
	ctx := context.Background()
	_, node := farmWithNode(t, c, k)
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
	written := 0
	testutil.Eventually(t, 30*time.Second, "five writes after losing a member", func() (bool, error) {
		for ; written < 5; written++ {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			ct, err := c.CreateNodeContract(cctx, node.ID, fmt.Sprintf("%02x", 10+written), "", 0)
			cancel()
			if err != nil {
				return false, err
			}
			ids = append(ids, ct.ID)
		}
		return true, nil
	})
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

// startRogueServer starts Debian's nats-server with a cluster block that
// routes to route, as someone who can reach a grid's route port would, and
// the grid's accounts: its anonymous clients are in the grid's account, and
// user "forger" (password "forger") in the twins' account. It returns the
// URL of its clients and that of its monitoring.
func startRogueServer(t *testing.T, route string) (client, monitor string) {
	t.Helper()
	bin := testutil.RequireBinary(t, "nats-server")
	ports := testutil.FreePorts(t, 3)
	conf := fmt.Sprintf(`listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
cluster {
  name: zgrid
  listen: "127.0.0.1:%d"
  routes: [%q]
}
accounts {
  %s { users: [{user: spy, password: spy}] }
  %s { users: [{user: forger, password: forger}] }
}
no_auth_user: spy
`, ports[0], ports[1], ports[2], route, natsd.GridAccount, natsd.TwinAccount)
	path := filepath.Join(t.TempDir(), "rogue.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	testutil.StartListening(t, addr, bin, "-c", path)
	return "nats://" + addr, fmt.Sprintf("http://127.0.0.1:%d", ports[1])
}

// TestZgridClusterRefusesRogueServer is the attack of issue 14 (finding 2):
// a nats-server with the grid's account names routes to a member's cluster
// port, anonymously or with guessed credentials. It gets no route; while a
// twin uses the grid, an anonymous client on it sees none of the grid's
// traffic, and the registry answers a client of its twins' account forges
// into the twin's inbox never arrive.
func TestZgridClusterRefusesRogueServer(t *testing.T) {
	testutil.SkipShort(t, "cluster test")
	testutil.RequireBinary(t, "nats-server")
	members := startZgridCluster(t, 3)
	k, _ := identity.Generate()
	nc := twinConn(t, clientURLs(members), k)
	c := registry.NewClient(nc, k)
	inbox := rmb.InboxPrefix(k.Public()) + ".forged"
	forged, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	port := members[0].clusterPort
	for _, tt := range []struct{ name, route string }{
		{"anonymous", fmt.Sprintf("nats-route://127.0.0.1:%d", port)},
		{"guessed credentials", fmt.Sprintf("nats-route://zgrid:zgrid@127.0.0.1:%d", port)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client, monitor := startRogueServer(t, tt.route)
			spy, err := nats.Connect(client)
			if err != nil {
				t.Fatal(err)
			}
			defer spy.Close()
			forger, err := nats.Connect(client, nats.UserInfo("forger", "forger"))
			if err != nil {
				t.Fatal(err)
			}
			defer forger.Close()
			seen, err := spy.SubscribeSync(">")
			if err != nil {
				t.Fatal(err)
			}
			if err := spy.Flush(); err != nil {
				t.Fatal(err)
			}
			// For a few seconds the twin works and the rogue's clients spy
			// and forge.
			ctx := context.Background()
			var spied []string
			for i, deadline := 0, time.Now().Add(rogueAttackWindow); time.Now().Before(deadline); i++ {
				if _, err := c.CreateFarm(ctx, fmt.Sprintf("%s-%d", strings.ReplaceAll(tt.name, " ", "-"), i)); err != nil {
					t.Fatalf("CreateFarm during the attack: %v", err)
				}
				if err := forger.Publish(inbox, []byte(`{"result":{"id":1}}`)); err != nil {
					t.Fatal(err)
				}
				if m, err := seen.NextMsg(100 * time.Millisecond); err == nil {
					spied = append(spied, m.Subject)
				}
			}
			if len(spied) > 0 {
				t.Errorf("the rogue server's anonymous client received %d of the grid's messages, first %q", len(spied), spied[0])
			}
			if m, err := forged.NextMsg(200 * time.Millisecond); err == nil {
				t.Errorf("a forged message reached the twin's inbox: %q", m.Data)
			}
			resp, err := http.Get(monitor + "/routez")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var rz struct {
				NumRoutes int `json:"num_routes"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&rz); err != nil {
				t.Fatal(err)
			}
			if rz.NumRoutes != 0 {
				t.Errorf("rogue nats-server has %d routes, want 0", rz.NumRoutes)
			}
		})
	}
}

func TestClusterFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		ok   bool
	}{
		{"cluster", []string{"--data", "/d", "--cluster-port", "6222", "--routes", "nats-route://10.0.0.2:6222"}, true},
		{"operator PKI", []string{"--data", "/d", "--cluster-port", "6222", "--cluster-ca", "ca.pem", "--cluster-cert", "c.pem", "--cluster-key", "c.key"}, true},
		{"CA alone", []string{"--data", "/d", "--cluster-port", "6222", "--cluster-ca", "ca.pem"}, false},
		{"certificate without key", []string{"--data", "/d", "--cluster-port", "6222", "--cluster-ca", "ca.pem", "--cluster-cert", "c.pem"}, false},
		{"PKI without cluster port", []string{"--data", "/d", "--cluster-ca", "ca.pem", "--cluster-cert", "c.pem", "--cluster-key", "c.key"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if (err == nil) != tt.ok {
				t.Fatalf("parseFlags(%q): got %v, want ok=%v", tt.args, err, tt.ok)
			}
		})
	}
}
