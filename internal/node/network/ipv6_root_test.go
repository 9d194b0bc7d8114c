package network

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/nft"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// Root tests of public IPv6: a farm LAN whose router is the real radvd,
// a node taking its address by SLAAC, and two tenants' VMs (namespaces on
// the node's public taps) with ip workloads asking for v6.

// lab6 is node 1 of a one-node farm with public taps for two tenants'
// VMs (twin 7's pvm, twin 8's pvm2).
type lab6 struct {
	lab         *netlab.Lab
	m           *Manager
	ips         *PublicIPManager
	node        string
	pvm, pvm2   string
	ptap, ptap2 string
}

func newLab6(t *testing.T, ra bool) *lab6 {
	t.Helper()
	requireNet(t)
	l := netlab.New(t, 1)
	tl := &lab6{lab: l, node: l.Nodes[0].NS, ptap: "p-a" + l.ID, ptap2: "p-b" + l.ID}
	tl.pvm, tl.pvm2 = l.NewNS(t, "pvm"), l.NewNS(t, "pvm2")
	sys := HostSystem(testutil.Logger(t))
	sys.Links = vethTaps{Links: sys.Links, vms: map[string]string{tl.ptap: tl.pvm, tl.ptap2: tl.pvm2}}
	tl.m = NewManager(Config{Prefix: l.Nodes[0].Prefix, NodeNS: tl.node, Uplink: true, TenantPorts: []uint16{9900}}, sys, testutil.Logger(t))
	if err := tl.m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tl.m.Close(); err != nil {
			t.Errorf("closing manager: %v", err)
		}
	})
	// The router starts advertising once the node accepts advertisements
	// (as after a node's boot, when the next periodic one comes).
	if ra {
		l.StartRouterAdvertisements(t)
	}
	c := registry.Contract{ID: 9, PublicIPs: []registry.PublicIP{{IP: "10.99.0.200/24", Gateway: netlab.LANGateway.String()}}}
	tl.ips = NewPublicIPManager(PublicIPConfig{NodeNS: tl.node}, sys.Firewall, fakeContracts{9: c}, tl.m, testutil.Logger(t))
	netlab.ListenTCP(t, tl.node, "[::]:"+probePort)
	serveZDB6(t, tl.node)
	return tl
}

// serveZDB6 serves 0-db on tenantPort of every IPv6 address of ns, as the
// node does (IPv6 only: the lab's IPv4 listens elsewhere), with admin
// password "admin".
func serveZDB6(t *testing.T, ns string) {
	t.Helper()
	dir := t.TempDir()
	st, err := zdb.Open(zdb.Config{DataDir: dir + "/data", IndexDir: dir + "/index"}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp6", "[::]:"+tenantPort); return err }); err != nil {
		t.Fatal(err)
	}
	srv := zdb.NewServer(zdb.ServerConfig{Admin: "admin"}, testutil.Logger(t), st)
	testutil.Go(t, "serving zdb over IPv6", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
}

// redisCLI runs script through redis-cli from ns against addr:tenantPort.
func redisCLI(t *testing.T, ns string, addr netip.Addr, script string) string {
	t.Helper()
	cli := testutil.RequireBinary(t, "redis-cli")
	out, err := netns.Run(ns, script+"\n", cli, "--no-raw", "-h", addr.String(), "-p", tenantPort)
	if err != nil {
		t.Fatalf("redis-cli from %s: %v\n%s", ns, err, out)
	}
	return strings.TrimSpace(out)
}

// provisionIP provisions twin's ip workload "pip" and removes it in
// t.Cleanup.
func (tl *lab6) provisionIP(t *testing.T, twin uint32, v4, v6 bool) (gridtypes.PublicIPResult, error) {
	t.Helper()
	d := &gridtypes.Deployment{TwinID: twin, ContractID: 9}
	wl := ipWorkloadV(t, d, "pip", v4, v6)
	res, err := tl.ips.Provision(context.Background(), wl)
	if err != nil {
		return gridtypes.PublicIPResult{}, err
	}
	t.Cleanup(func() {
		if err := tl.ips.Deprovision(context.Background(), wl); err != nil {
			t.Errorf("deprovisioning: %v", err)
		}
	})
	return res.(gridtypes.PublicIPResult), nil
}

// guest6 configures, in the namespace standing for a VM, what vminit
// configures on eth1: the address as a /128 and the node (fe80::1) as the
// default router.
func guest6(t *testing.T, ns string, ip netip.Addr) {
	t.Helper()
	if err := rtnl.AddAddr(ns, "eth0", netip.PrefixFrom(ip, 128)); err != nil {
		t.Fatal(err)
	}
	if err := rtnl.AddRoute(ns, rtnl.Route{Dst: netip.MustParsePrefix("::/0"), Dev: "eth0", Via: RouterLinkLocal}); err != nil {
		t.Fatal(err)
	}
}

func delAddr(t *testing.T, ns string, p netip.Prefix) {
	t.Helper()
	if out, err := netns.Run(ns, "", "ip", "addr", "del", p.String(), "dev", "eth0"); err != nil {
		t.Fatalf("ip addr del %s: %v %s", p, err, out)
	}
}

func pingable(ns string, ip netip.Addr) func() (bool, error) {
	return func() (bool, error) { ok, _ := netlab.Ping(ns, ip, 1); return ok, nil }
}

func result6(t *testing.T, r gridtypes.PublicIPResult) netip.Addr {
	t.Helper()
	p, err := netip.ParsePrefix(r.IPv6.String())
	if err != nil || !netlab.PublicLAN6.Contains(p.Addr()) || p.Bits() != 64 {
		t.Fatalf("result ip6: got %s, want an address of %s/64", r.IPv6, netlab.PublicLAN6)
	}
	return p.Addr()
}

// TestRootPublicIPv6: the node takes its IPv6 from radvd's advertisement
// (SLAAC); a VM's ip workload with v6 gets an address of that /64 that
// the internet pings and that reaches the internet under its own address;
// the VM reaches the node only at its tenant port; a VM that claims
// another tenant's IPv6 or advertises itself as a router gets nothing
// through; deprovisioning leaves no proxy entry or filter behind.
func TestRootPublicIPv6(t *testing.T) {
	tl := newLab6(t, true)
	inet := tl.lab.Internet

	var nodeAddr netip.Addr
	start := time.Now()
	testutil.Eventually(t, 30*time.Second, "the node takes an address of the advertised prefix by SLAAC", func() (bool, error) {
		p, err := tl.m.Prefix6()
		if errors.Is(err, ErrNoIPv6) {
			return false, nil
		}
		if err != nil || p != netlab.PublicLAN6 {
			return false, err
		}
		addrs, err := rtnl.Addrs(tl.node)
		for _, a := range addrs["eth0"] {
			if p.Contains(a.Addr()) {
				nodeAddr = a.Addr()
			}
		}
		return nodeAddr.IsValid(), err
	})
	t.Logf("SLAAC address %s usable %v after radvd started", nodeAddr, time.Since(start).Round(time.Millisecond))
	if !tl.m.HasIPv6() {
		t.Fatal("has_ipv6: got false after SLAAC")
	}

	r7, err := tl.provisionIP(t, 7, false, true)
	if err != nil {
		t.Fatal(err)
	}
	r8, err := tl.provisionIP(t, 8, false, true)
	if err != nil {
		t.Fatal(err)
	}
	a6, b6 := result6(t, r7), result6(t, r8)
	if a6 == b6 || a6 == nodeAddr {
		t.Fatalf("addresses: twin 7 %s, twin 8 %s, node %s: want distinct", a6, b6, nodeAddr)
	}
	// The zmachine manager attaches the taps with the workloads' own
	// names; here the lab's taps stand for them, so the filters move too.
	for _, c := range []struct {
		tap, of string
		ip      netip.Addr
	}{{tl.ptap, PublicTap(gridtypes.NewWorkloadID(7, 9, "pip")), a6}, {tl.ptap2, PublicTap(gridtypes.NewWorkloadID(8, 9, "pip")), b6}} {
		if err := tl.m.sys.Firewall.Apply(tl.node, PublicIPRuleset(c.tap, netip.Addr{}, c.ip)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := tl.m.sys.Firewall.Apply(tl.node, nft.Drop("inet", filterTable(c.tap))); err != nil {
				t.Errorf("dropping the filter of %s: %v", c.tap, err)
			}
		})
		if err := tl.m.AttachPublic(c.tap, c.ip); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := tl.m.Detach(c.tap); err != nil {
				t.Errorf("detaching %s: %v", c.tap, err)
			}
		})
	}
	guest6(t, tl.pvm, a6)
	guest6(t, tl.pvm2, b6)

	internet6 := net.JoinHostPort(netlab.InternetHost6.String(), probePort)
	_, clients := netlab.ListenTCP(t, inet, internet6)
	netlab.ListenTCP(t, tl.pvm2, "[::]:"+probePort)

	t.Run("the internet pings the VM", func(t *testing.T) {
		testutil.Eventually(t, 20*time.Second, "a ping from the internet to "+a6.String(), pingable(inet, a6))
		_, out := netlab.Ping(inet, a6, 5)
		t.Logf("ping over IPv6 through the NDP proxy:\n%s", out)
	})
	t.Run("the VM reaches the internet under its own address", func(t *testing.T) {
		testutil.Eventually(t, 10*time.Second, "a ping from the VM to the internet host", pingable(tl.pvm, netlab.InternetHost6))
		if err := netlab.DialTCP(tl.pvm, internet6, dialWait); err != nil {
			t.Fatalf("dialing the internet host: %v", err)
		}
		select {
		case c := <-clients:
			if c.Addr() != a6 {
				t.Errorf("client address: got %s, want %s (no NAT)", c.Addr(), a6)
			}
		case <-time.After(5 * time.Second):
			t.Error("the internet host saw no connection")
		}
	})
	t.Run("the VM reaches the node at its tenant port only", func(t *testing.T) {
		if err := netlab.DialTCP(tl.pvm, net.JoinHostPort(nodeAddr.String(), tenantPort), dialWait); err != nil {
			t.Errorf("tenant port over IPv6: got %v, want accepted", err)
		}
		if err := netlab.DialTCP(tl.pvm, net.JoinHostPort(nodeAddr.String(), probePort), dialWait); err == nil {
			t.Error("another port of the node over IPv6: got accepted, want dropped")
		}
		if err := netlab.DialTCP(tl.pvm, net.JoinHostPort("fe80::1%eth0", probePort), dialWait); err == nil {
			t.Error("the node's fe80::1 on the tap: got accepted, want dropped")
		}
	})
	t.Run("redis-cli over IPv6 to a zdb namespace, from the internet and from a tenant", func(t *testing.T) {
		got := redisCLI(t, inet, nodeAddr, `AUTH admin
NSNEW ns6
NSSET ns6 password s3cret
SELECT ns6 s3cret
SET k v6
GET k`)
		if want := "OK\nOK\nOK\nOK\n\"k\"\n\"v6\""; got != want {
			t.Errorf("from the internet: got\n%s\nwant\n%s", got, want)
		}
		if got, want := redisCLI(t, tl.pvm, nodeAddr, "SELECT ns6 s3cret\nGET k"), "OK\n\"v6\""; got != want {
			t.Errorf("from the tenant's VM: got\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("a router advertisement from the VM is ignored", func(t *testing.T) {
		if err := netlab.SendRA(tl.pvm, "eth0", netip.MustParsePrefix("2001:db8:66::/64")); err != nil {
			t.Fatal(err)
		}
		testutil.Never(t, raWindow, "the node takes the VM's prefix", func() (bool, error) {
			addrs, err := rtnl.Addrs(tl.node)
			for _, as := range addrs {
				for _, a := range as {
					if strings.HasPrefix(a.Addr().String(), "2001:db8:66:") {
						return true, nil
					}
				}
			}
			return false, err
		})
	})
	t.Run("a VM claiming another tenant's IPv6 gets nothing through", func(t *testing.T) {
		delAddr(t, tl.pvm, netip.PrefixFrom(a6, 128))
		if err := rtnl.AddAddr(tl.pvm, "eth0", netip.PrefixFrom(b6, 128)); err != nil {
			t.Fatal(err)
		}
		if ok, out := netlab.Ping(tl.pvm, netlab.InternetHost6, 2); ok {
			t.Errorf("ping from the spoofed %s: got an answer, want dropped\n%s", b6, out)
		}
		if err := netlab.DialTCP(tl.pvm, internet6, dialWait); err == nil {
			t.Errorf("TCP from the spoofed %s: got through", b6)
		}
		if err := netlab.DialTCP(tl.pvm, net.JoinHostPort(nodeAddr.String(), tenantPort), dialWait); err == nil {
			t.Errorf("TCP to the node from the spoofed %s: got through", b6)
		}
		// Twin 8's address still leads to twin 8's VM, not to the claimant.
		if err := netlab.DialTCP(inet, net.JoinHostPort(b6.String(), probePort), dialWait); err != nil {
			t.Errorf("the internet to twin 8's VM: %v", err)
		}
		delAddr(t, tl.pvm, netip.PrefixFrom(b6, 128))
		if err := rtnl.AddAddr(tl.pvm, "eth0", netip.PrefixFrom(a6, 128)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 10*time.Second, "the VM under its own address again", pingable(tl.pvm, netlab.InternetHost6))
	})
	t.Run("one tenant's VM reaches another's public IPv6 as the internet does, no more", func(t *testing.T) {
		if err := netlab.DialTCP(tl.pvm, net.JoinHostPort(b6.String(), probePort), dialWait); err != nil {
			t.Errorf("public address of twin 8's VM: %v", err)
		}
		// Not its link-local address (no route between taps), nor the LAN's
		// private prefix through the node.
		for _, to := range []string{"[fd99::1]:" + probePort, "[fe80::1%eth0]:" + probePort} {
			if err := netlab.DialTCP(tl.pvm, to, dialWait); err == nil {
				t.Errorf("%s: got accepted, want dropped", to)
			}
		}
	})

	t.Run("nothing left behind", func(t *testing.T) {
		for _, tap := range []string{tl.ptap, tl.ptap2} {
			if err := tl.m.Detach(tap); err != nil {
				t.Fatal(err)
			}
		}
		proxies, err := rtnl.ProxyNeighbors(tl.node)
		if err != nil || len(proxies) != 0 {
			t.Errorf("proxy entries after detaching: got %v, %v, want none", proxies, err)
		}
	})
}

// TestRootNoRouterAdvertisement: on a LAN without router advertisements
// an ip workload with v6 fails with a clear error and installs nothing,
// while one with v4 works and its VM reaches the internet.
func TestRootNoRouterAdvertisement(t *testing.T) {
	tl := newLab6(t, false)
	_, err := tl.provisionIP(t, 7, true, true)
	if !errors.Is(err, ErrNoIPv6) || !strings.Contains(err.Error(), "no router advertisement") {
		t.Fatalf("v6 without RA: got %v, want ErrNoIPv6", err)
	}
	tables, err := nft.Tables{}.List(tl.node)
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(tables, func(s string) bool { return strings.HasPrefix(s, "inet zos-p-") }); i >= 0 {
		t.Errorf("tables after the refused workload: got %s, want no public tap filter", tables[i])
	}
	if tl.m.HasIPv6() {
		t.Error("has_ipv6: got true without RA")
	}

	r, err := tl.provisionIP(t, 7, true, false)
	if err != nil {
		t.Fatal(err)
	}
	ip4 := netip.MustParsePrefix(r.IP.String())
	if err := tl.m.sys.Firewall.Apply(tl.node, PublicIPRuleset(tl.ptap, ip4.Addr(), netip.Addr{})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tl.m.sys.Firewall.Apply(tl.node, nft.Drop("inet", filterTable(tl.ptap))); err != nil {
			t.Error(err)
		}
	})
	if err := tl.m.AttachPublic(tl.ptap, ip4.Addr()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tl.m.Detach(tl.ptap); err != nil {
			t.Error(err)
		}
	})
	if err := rtnl.AddAddr(tl.pvm, "eth0", ip4); err != nil {
		t.Fatal(err)
	}
	if err := rtnl.AddRoute(tl.pvm, rtnl.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0", Via: netlab.LANGateway}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, "IPv4 from the public VM to the internet", pingable(tl.pvm, netlab.InternetHost))
}

// TestRootProxyLeftovers: NDP proxy entries a run that did not stop
// cleanly left on the uplink go when the manager starts (it would
// otherwise answer for addresses of VMs no longer there).
func TestRootProxyLeftovers(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	ns := l.Nodes[0].NS
	if err := rtnl.AddProxyNeighbor(ns, "eth0", netip.MustParseAddr("2001:db8:1::99")); err != nil {
		t.Fatal(err)
	}
	if got, err := rtnl.ProxyNeighbors(ns); err != nil || len(got) != 1 {
		t.Fatalf("before start: got %v, %v, want the leftover", got, err)
	}
	m := NewManager(Config{Prefix: l.Nodes[0].Prefix, NodeNS: ns, Uplink: true}, HostSystem(testutil.Logger(t)), testutil.Logger(t))
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	if got, err := rtnl.ProxyNeighbors(ns); err != nil || len(got) != 0 {
		t.Errorf("after start: got %v, %v, want none", got, err)
	}
}

// TestRootStatic6FromRecord: on a LAN without router advertisements, the
// farm's static IPv6 from the node's record (SetStatic6, after
// registration) gives the node its address, its default route and
// has_ipv6, and v6 ip workloads an address in that /64; a bad config
// before it is refused and changes nothing.
func TestRootStatic6FromRecord(t *testing.T) {
	tl := newLab6(t, false)
	if err := tl.m.SetStatic6("fd00::7/64", "fe80::1"); err == nil {
		t.Error("a private /64 was taken")
	}
	if tl.m.HasIPv6() {
		t.Fatal("has_ipv6 after a refused config: got true")
	}
	if err := tl.m.SetStatic6("2001:db8:1::7/64", "fe80::1"); err != nil {
		t.Fatal(err)
	}
	// usable once duplicate address detection is done (tentative
	// addresses do not count)
	if err := testutil.Poll(10*time.Second, func() (bool, error) { return tl.m.HasIPv6(), nil }); err != nil {
		t.Fatalf("has_ipv6 never came with the static address: %v", err)
	}
	addrs, err := rtnl.Addrs(tl.node)
	if err != nil || !slices.Contains(addrs["eth0"], netip.MustParsePrefix("2001:db8:1::7/64")) {
		t.Errorf("uplink addresses: got %v, %v, want 2001:db8:1::7/64", addrs["eth0"], err)
	}
	routes, err := rtnl.Routes(tl.node, 10) // AF_INET6
	if err != nil || !slices.ContainsFunc(routes, func(r rtnl.Listed) bool {
		return r.Dst.Bits() == 0 && r.Via == netip.MustParseAddr("fe80::1") && r.Dev == "eth0"
	}) {
		t.Errorf("routes: got %v, %v, want default via fe80::1 dev eth0", routes, err)
	}
	if p, err := tl.m.Prefix6(); err != nil || p != netip.MustParsePrefix("2001:db8:1::/64") || !tl.m.HasIPv6() {
		t.Errorf("Prefix6: got %v, %v (has_ipv6 %v), want 2001:db8:1::/64", p, err, tl.m.HasIPv6())
	}
	r, err := tl.provisionIP(t, 7, false, true)
	if err != nil {
		t.Fatal(err)
	}
	result6(t, r) // an address of the farm's /64

}
