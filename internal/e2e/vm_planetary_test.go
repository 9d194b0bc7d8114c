package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/network/netlab/yggpeer"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// TestVMPlanetary boots one VM (real QEMU, tcg) with `planetary: true` on
// each of two nodes in network namespaces, both peering with a public
// yggdrasil peer (the real yggdrasil daemon, yggpeer) in the lab's internet
// namespace. VM a (one tenant, node 1) gets planetary_ip in the node's
// overlay /64, configured by vminit: it pings the public peer, and the
// public peer pings it; VM b (another tenant, node 2) pings VM a over the
// overlay. Cancelling the deployments removes the planetary taps; node 1's
// zos.network.planetary shows its peer up, and down once the public peer
// stops. (Spoofing,
// the node's services and TCP are covered by the network lab test
// TestRootPlanetaryVMs in internal/node/network.)
func TestVMPlanetary(t *testing.T) {
	cache := requireVMPrereqs(t)
	testutil.RequireBinary(t, "nft")
	testutil.RequireFile(t, "/dev/net/tun")
	lab := netlab.New(t, 2)
	peer := fmt.Sprintf("tcp://%s:9651", netlab.LANGateway)
	pub := yggpeer.Start(t, lab.Internet, yggpeer.Config{Listen: []string{peer}})

	g := startGrid(t)
	farmer := newUser(t, g)
	n1 := vmNode(t, g, farmer, cache, "--netns", lab.Nodes[0].NS, "--planetary-peer", peer)
	n2 := vmNode(t, g, farmer, cache, "--netns", lab.Nodes[1].NS, "--planetary-peer", peer)

	// deployVM deploys user u's VM with `planetary: true` on n, pinging
	// target from inside, and returns the deployment and planetary_ip
	deployVM := func(u *user, n *node, net string, target netip.Addr) (gridtypes.Deployment, netip.Addr) {
		t.Helper()
		url := busyboxFlist(t, u, "ygg"+net)
		id := strconv.Itoa(int(n.id))
		u.mustRun("network", "create", "--name", net, "--nodes", id, "--ip-range", "10.38.0.0/16")
		var d gridtypes.Deployment
		u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", net, "--memory", "256M",
			"--entrypoint", "/mesh.sh", "--env", "PEER="+target.String(), "--planetary")
		var r gridtypes.ZMachineResult
		if err := d.Get("vm").Result.Unmarshal(&r); err != nil {
			t.Fatalf("zmachine result: %v", err)
		}
		ip, err := netip.ParseAddr(r.PlanetaryIP)
		if err != nil || !netip.MustParsePrefix("300::/8").Contains(ip) || r.YggIP != r.PlanetaryIP {
			t.Fatalf("zmachine result: planetary_ip %q ygg_ip %q, want the same address of the node's /64 in 300::/8", r.PlanetaryIP, r.YggIP)
		}
		return d, ip
	}

	a, b := newUser(t, g), newUser(t, g)
	da, ipA := deployVM(a, n1, "neta", pub.Address)
	t.Logf("VM a: %s on node 1", ipA)
	waitConsole(t, a, da.ContractID, "vm", regexp.MustCompile(`PEER-OK `+regexp.QuoteMeta(pub.Address.String())), 2*time.Minute)
	if ok, out := pingRetry(lab.Internet, ipA); !ok {
		t.Errorf("the public peer cannot ping VM a at %s over the overlay: %s", ipA, out)
	}

	db, ipB := deployVM(b, n2, "netb", ipA)
	t.Logf("VM b: %s on node 2", ipB)
	waitConsole(t, b, db.ContractID, "vm", regexp.MustCompile(`PEER-OK `+regexp.QuoteMeta(ipA.String())), 2*time.Minute)

	// cancelled, each VM's planetary tap goes (and its QEMU with it)
	a.mustRun("deployment", "cancel", strconv.FormatUint(da.ContractID, 10))
	b.mustRun("deployment", "cancel", strconv.FormatUint(db.ContractID, 10))
	tapA, tapB := network.PlanetaryTap(da.WorkloadID("vm")), network.PlanetaryTap(db.WorkloadID("vm"))
	waitFor(t, 60*time.Second, "the VMs' planetary taps to go", func() bool {
		return !rtnl.LinkExists(lab.Nodes[0].NS, tapA) && !rtnl.LinkExists(lab.Nodes[1].NS, tapB)
	})

	// the node API shows the overlay's peer up, then down once it stops
	ud := dial(t, a)
	rec, err := ud.reg.Node(context.Background(), n1.id)
	if err != nil {
		t.Fatal(err)
	}
	var st nodeapi.Planetary
	peerUp := func(up bool) func() bool {
		return func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st = nodeapi.Planetary{}
			if err := ud.rmb.Call(ctx, rec.TwinID, nodeapi.CmdPlanetary, nil, &st); err != nil || !st.Running || len(st.Peers) != 1 {
				return false
			}
			p := st.Peers[0]
			return p.URI == peer && p.Up == up && (!up || p.Address == pub.Address.String())
		}
	}
	waitFor(t, 30*time.Second, "zos.network.planetary: the public peer up", peerUp(true))
	if err := pub.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "zos.network.planetary: the public peer down", peerUp(false))
	t.Logf("zos.network.planetary: %+v", st)
}
