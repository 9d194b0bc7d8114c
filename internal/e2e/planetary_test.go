package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/network/netlab/yggpeer"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

// TestNodePlanetaryZDB runs a node in a network namespace with
// --planetary-peer pointing at a public yggdrasil peer (the real
// yggdrasil daemon, yggpeer) in the lab's internet namespace: the node
// shows its overlay address in zos.network.interfaces, a zdb namespace
// lists it in its ips, and redis-cli from the public peer uses the
// namespace over the overlay; once the peer is dead, the node goes on deploying and serving
// over IPv4.
func TestNodePlanetaryZDB(t *testing.T) {
	requireNodePrereqs(t)
	testutil.RequireBinary(t, "nft")
	testutil.RequireBinary(t, "redis-cli")
	testutil.RequireFile(t, "/dev/net/tun")
	lab := netlab.New(t, 1)
	peer := fmt.Sprintf("tcp://%s:9651", netlab.LANGateway)
	pub := yggpeer.Start(t, lab.Internet, yggpeer.Config{Listen: []string{peer}})

	g := startGrid(t)
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	n := startNode(t, g, farmer.farmToken(farm.ID), "--netns", lab.Nodes[0].NS, "--planetary-peer", peer)
	n.waitRegistered(farmer)
	u := newUser(t, g)
	ud := dial(t, u)
	rec, err := ud.reg.Node(context.Background(), n.id)
	if err != nil {
		t.Fatal(err)
	}
	var ygg netip.Addr
	waitFor(t, 60*time.Second, "the node's planetary address in zos.network.interfaces", func() bool {
		var ifaces map[string][]string
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ud.rmb.Call(ctx, rec.TwinID, "zos.network.interfaces", nil, &ifaces); err != nil || len(ifaces["planetary"]) != 1 {
			return false
		}
		ygg, err = netip.ParseAddr(ifaces["planetary"][0])
		return err == nil
	})
	if !netip.MustParsePrefix("200::/7").Contains(ygg) {
		t.Fatalf("planetary address %s is not in 200::/7", ygg)
	}

	var d gridtypes.Deployment
	u.json(&d, "deploy", "zdb", "--node", strconv.Itoa(int(n.id)), "--size", "1G", "--password", "pw", "--name", "db")
	r := zdbResult(t, &d, "db")
	found := false
	for _, ip := range r.IPs {
		found = found || ip == ygg.String()
	}
	if !found {
		t.Errorf("zdb ips %v lack the node's planetary address %s", r.IPs, ygg)
	}
	var out string
	waitFor(t, 30*time.Second, "redis-cli over the overlay", func() bool {
		out, err = netns.Run(lab.Internet, fmt.Sprintf("SELECT %s pw\nSET k over-ygg\nGET k\n", r.Namespace),
			"redis-cli", "-h", ygg.String(), "-p", strconv.Itoa(n.zdbPort))
		return err == nil && strings.Contains(out, "over-ygg")
	})

	// the public peer dies: the node keeps working over IPv4 (a new
	// namespace is deployed and used on the LAN address)
	if err := pub.Stop(); err != nil {
		t.Fatal(err)
	}
	var d2 gridtypes.Deployment
	u.json(&d2, "deploy", "zdb", "--node", strconv.Itoa(int(n.id)), "--size", "1G", "--password", "pw", "--name", "db2")
	r2 := zdbResult(t, &d2, "db2")
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\nSET k ipv4\nGET k\n", r2.Namespace)); !strings.Contains(out, "ipv4") {
		t.Errorf("with the planetary peer dead, redis-cli over IPv4: %q", out)
	}
}
