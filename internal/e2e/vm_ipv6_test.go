package e2e

import (
	"context"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// TestVMPublicIPv6 gives a VM (real QEMU, tcg) a public IPv6 on a node in
// a network namespace whose LAN router is the real radvd: the node takes
// its /64 by SLAAC, the ip workload with v6 derives the VM's address in
// it, vminit configures it, the VM pings the internet host over IPv6 and
// the internet pings the VM; cancelling the deployment removes the tap and
// the NDP proxy entry.
func TestVMPublicIPv6(t *testing.T) {
	cache := requireVMPrereqs(t)
	testutil.RequireBinary(t, "nft")
	lab := netlab.New(t, 1)
	g := startGrid(t)
	farmer := newUser(t, g)
	n := vmNode(t, g, farmer, cache, "--netns", lab.Nodes[0].NS)
	nodeNS := lab.Nodes[0].NS
	lab.StartRouterAdvertisements(t)
	waitFor(t, 30*time.Second, "the node's SLAAC address", func() bool {
		addrs, _ := rtnl.Addrs(nodeNS)
		for _, a := range addrs["eth0"] {
			if netlab.PublicLAN6.Contains(a.Addr()) {
				return true
			}
		}
		return false
	})

	u := newUser(t, g)
	ud := dial(t, u)
	rec, err := ud.reg.Node(context.Background(), n.id)
	if err != nil {
		t.Fatal(err)
	}
	var has6 bool
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := ud.rmb.Call(ctx, rec.TwinID, "zos.network.has_ipv6", nil, &has6); err != nil || !has6 {
		t.Errorf("zos.network.has_ipv6: got %v, %v, want true after SLAAC", has6, err)
	}
	url := busyboxFlist(t, u, "pub6")
	id := strconv.Itoa(int(n.id))
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.37.0.0/16")
	var d gridtypes.Deployment
	u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/mesh.sh", "--env", "PEER="+netlab.InternetHost6.String(), "--public-ip6")
	var ipr gridtypes.PublicIPResult
	if err := d.Get("vmpip").Result.Unmarshal(&ipr); err != nil || ipr.IPv6.IsZero() || !ipr.IP.IsZero() {
		t.Fatalf("ip workload result: got %+v %v, want ip6 only", ipr, err)
	}
	ip6 := netip.MustParsePrefix(ipr.IPv6.String())
	want, _ := network.DeriveIPv6(netlab.PublicLAN6, network.PublicMAC(network.PublicTap(d.WorkloadID("vmpip"))))
	if ip6.Addr() != want || ip6.Bits() != 64 {
		t.Errorf("ip6: got %s, want %s/64", ip6, want)
	}
	waitConsole(t, u, d.ContractID, "vm", regexp.MustCompile(`PEER-OK `+regexp.QuoteMeta(netlab.InternetHost6.String())), 2*time.Minute)
	if ok, out := pingRetry(lab.Internet, ip6.Addr()); !ok {
		t.Errorf("the internet cannot ping the VM's public IPv6: %s", out)
	}

	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	waitFor(t, 60*time.Second, "the public tap and its NDP proxy entry to go", func() bool {
		proxies, err := rtnl.ProxyNeighbors(nodeNS)
		return err == nil && len(proxies) == 0 && !rtnl.LinkExists(nodeNS, network.PublicTap(d.WorkloadID("vmpip")))
	})
}
