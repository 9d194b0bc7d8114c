package network

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/nft"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// Root tests of the node's boundary towards its tenants: what a VM can
// send to the node, to the farm's LAN and through the node, over IPv4 and
// IPv6. Each performs the attack from a namespace standing for the VM.

// vethTaps is the real kernel's Links, but a tap named in vms is made as
// a veth whose other end is eth0 of the namespace standing for that VM (a
// tap has no carrier without a VM behind it). The node's end is made as
// the tap would be: without IPv6.
type vethTaps struct {
	Links
	vms map[string]string
}

func (k vethTaps) AddTap(ns, name, master string) error {
	vm, ok := k.vms[name]
	if !ok {
		return k.Links.AddTap(ns, name, master)
	}
	return rtnl.AddVeth(ns, name, master, vm, "eth0", rtnl.NoIPv6())
}

const (
	probePort  = "7000" // a service of whoever listens, not meant for tenants
	tenantPort = "9900" // a port of the node meant for tenants (its 0-db)
	dialWait   = 1500 * time.Millisecond
)

// Windows in which something must not happen: nothing signals that it did
// not, so the tests watch for it this long.
const (
	// raWindow is how long the node and its router get to take a VM's
	// router advertisement after the other VM on the bridge took it (the
	// kernel handles an RA in microseconds; this is ample).
	raWindow = 500 * time.Millisecond
	// forgedUDPWindow is how long forged UDP packets get to reach the node
	// or the farm's router: local delivery over veths, so well under it.
	forgedUDPWindow = time.Second
)

// tenantLab is node 1 of a two-node farm with twin 7's network "net"
// (10.20.2.0/24 on the node), two VMs on its bridge (10.20.2.5, .6) and a
// VM with the farm's public IP 10.99.0.200 on a public tap; node 2 stands
// for another host of the farm's LAN. Every host listens on probePort.
type tenantLab struct {
	lab              *netlab.Lab
	m                *Manager
	node, nr         string // namespaces of node 1 and of the resource
	vm, vm2, pvm     string // namespaces standing for the VMs
	tap, tap2, ptap  string
	names            Names
	public           netip.Addr // the resource's address towards the node
	nodeIP, otherIP  netip.Addr
	internet, router string // host:probePort of the internet host and of the farm router
}

func newTenantLab(t *testing.T) *tenantLab {
	t.Helper()
	requireNet(t)
	testutil.RequireBinary(t, "ip")
	l := netlab.New(t, 2)
	tl := &tenantLab{lab: l, node: l.Nodes[0].NS, nodeIP: l.Nodes[0].IP, otherIP: l.Nodes[1].IP,
		tap: "t-vm1" + l.ID, tap2: "t-vm2" + l.ID, ptap: "p-pvm" + l.ID,
		internet: net.JoinHostPort(netlab.InternetHost.String(), probePort),
		router:   net.JoinHostPort(netlab.LANGateway.String(), probePort)}
	tl.vm, tl.vm2, tl.pvm = l.NewNS(t, "vm"), l.NewNS(t, "vm2"), l.NewNS(t, "pvm")
	sys := HostSystem(testutil.Logger(t))
	sys.Links = vethTaps{Links: sys.Links, vms: map[string]string{tl.tap: tl.vm, tl.tap2: tl.vm2, tl.ptap: tl.pvm}}
	tl.m = NewManager(Config{Prefix: l.Nodes[0].Prefix, NodeNS: tl.node, Uplink: true, TenantPorts: []uint16{9900}, ReservedPorts: []uint16{9900}},
		sys, testutil.Logger(t))
	if err := tl.m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tl.m.Close(); err != nil {
			t.Errorf("closing manager: %v", err)
		}
	})
	key := newKey(t)
	n := gridtypes.Network{NetworkIPRange: ipnet("10.20.0.0/16"), Subnet: ipnet("10.20.2.0/24"), WGPrivateKey: key.priv, WGListenPort: 6001}
	if _, err := tl.m.Provision(context.Background(), netWorkload(t, 7, "net", n)); err != nil {
		t.Fatal(err)
	}
	tl.names = NamesOf(l.Nodes[0].Prefix, gridtypes.NetID(7, "net"))
	tl.nr = tl.names.NS
	tl.m.mu.Lock()
	tl.public = tl.m.res[gridtypes.NetID(7, "net")].r.Public
	tl.m.mu.Unlock()

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct{ ns, tap string }{{tl.vm, tl.tap}, {tl.vm2, tl.tap2}} {
		att, err := tl.m.Attach(7, "net", c.tap)
		must(err)
		must(rtnl.AddAddr(c.ns, "eth0", netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 20, 2, byte(5 + i)}), 24)))
		must(rtnl.AddRoute(c.ns, rtnl.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0", Via: att.Gateway.Addr()}))
	}
	must(tl.m.AttachPublic(tl.ptap, netip.MustParseAddr("10.99.0.200")))
	must(rtnl.AddAddr(tl.pvm, "eth0", netip.MustParsePrefix("10.99.0.200/24")))
	must(rtnl.AddRoute(tl.pvm, rtnl.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0", Via: netlab.LANGateway}))

	// Everyone listens: the node on every address ([::], as its own
	// services do), the farm's router and the internet host, node 2 (a
	// host of the farm's LAN) and the VMs.
	netlab.ListenTCP(t, tl.node, "[::]:"+probePort)
	netlab.ListenTCP(t, tl.node, "[::]:"+tenantPort)
	netlab.ListenTCP(t, l.Internet, tl.router)
	netlab.ListenTCP(t, l.Nodes[1].NS, net.JoinHostPort(tl.otherIP.String(), probePort))
	for _, ns := range []string{tl.vm2, tl.pvm} {
		netlab.ListenTCP(t, ns, "[::]:"+probePort)
	}
	return tl
}

// tapLinkLocals are the addresses the node's links on the VM's side would
// have with IPv6 on, and those that answer a ping to all nodes from vm
// (except the other VM's: that link is the tenant's).
func (tl *tenantLab) nodeLinkLocals(t *testing.T) []netip.Addr {
	t.Helper()
	vm2, err := rtnl.HardwareAddr(tl.vm2, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, l := range []string{tl.names.Bridge, tl.names.BridgeVeth, tl.tap} {
		mac, err := rtnl.HardwareAddr(tl.node, l)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, netlab.LinkLocal(mac))
	}
	nrMAC, err := rtnl.HardwareAddr(tl.nr, tl.names.NRVeth)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, netlab.LinkLocal(nrMAC))
	answers, err := netlab.Neighbors6(tl.vm, "eth0", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range answers {
		if a != netlab.LinkLocal(vm2) {
			t.Errorf("%s answers a ping to all nodes from a VM", a)
			out = append(out, a)
		}
	}
	return out
}

// ipv6State is what ns has of IPv6: its addresses and routes, as ip shows
// them.
func ipv6State(t *testing.T, ns string) string {
	t.Helper()
	addrs, err := netns.Run(ns, "", "ip", "-o", "-6", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	routes, err := netns.Run(ns, "", "ip", "-6", "route", "show")
	if err != nil {
		t.Fatal(err)
	}
	return addrs + routes
}

// sysctl reads /proc/sys/<key> in ns.
func sysctl(t *testing.T, ns, key string) string {
	t.Helper()
	var b []byte
	if err := netns.Do(ns, func() (err error) { b, err = os.ReadFile(filepath.Join("/proc/sys", key)); return err }); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestRootTenantIPv6: a VM on a network's bridge reaches no listener of
// the node over IPv6 link-local, and its router advertisements give the
// node (and its network resource) neither an address nor a route; IPv6
// between the tenant's own VMs on the bridge still works.
func TestRootTenantIPv6(t *testing.T) {
	tl := newTenantLab(t)

	t.Run("node links have no IPv6", func(t *testing.T) {
		for _, l := range []string{tl.names.Bridge, tl.names.BridgeVeth, tl.names.PublicVeth, tl.tap, tl.ptap} {
			for key, want := range map[string]string{"disable_ipv6": "1", "accept_ra": "0", "accept_redirects": "0", "addr_gen_mode": "1"} {
				if got := sysctl(t, tl.node, "net/ipv6/conf/"+l+"/"+key); got != want {
					t.Errorf("%s %s: got %s, want %s", l, key, got, want)
				}
			}
		}
		st := ipv6State(t, tl.node)
		for _, l := range TenantLinks {
			if strings.Contains(st, ": "+l) {
				t.Errorf("a tenant link of the node has IPv6:\n%s", st)
				break
			}
		}
		if got := sysctl(t, tl.nr, "net/ipv6/conf/all/disable_ipv6"); got != "1" {
			t.Errorf("resource namespace: all/disable_ipv6 got %s, want 1", got)
		}
	})

	t.Run("node listeners over link-local", func(t *testing.T) {
		// An attacker waits for the node's addresses to pass duplicate
		// address detection.
		_ = testutil.Poll(5*time.Second, func() (bool, error) { return !strings.Contains(ipv6State(t, tl.node), "tentative"), nil })
		for _, a := range tl.nodeLinkLocals(t) {
			addr := net.JoinHostPort(a.WithZone("eth0").String(), probePort)
			if err := netlab.DialTCP(tl.vm, addr, dialWait); err == nil {
				t.Errorf("a VM connects to the node's [::]:%s at %s", probePort, addr)
			}
		}
	})

	t.Run("router advertisement", func(t *testing.T) {
		prefix := netip.MustParsePrefix("2001:db8:bad::/64")
		before := ipv6State(t, tl.node)
		if err := netlab.SendRA(tl.vm, "eth0", prefix); err != nil {
			t.Fatal(err)
		}
		// The other VM on the bridge takes the advertisement: it was
		// valid and crossed the bridge.
		testutil.Eventually(t, 5*time.Second, "setup: the other VM to take the advertisement", func() (bool, error) {
			st := ipv6State(t, tl.vm2)
			return strings.Contains(st, "2001:db8:bad:"), fmt.Errorf("the other VM did not take it:\n%s", st)
		})
		testutil.Never(t, raWindow, "the node or its router took a VM's router advertisement", func() (bool, error) {
			for _, ns := range []string{tl.node, tl.nr} {
				if st := ipv6State(t, ns); strings.Contains(st, "2001:db8:bad:") || strings.Contains(st, "default") {
					return true, fmt.Errorf("%s:\n%s", ns, st)
				}
			}
			return false, nil
		})
		if after := ipv6State(t, tl.node); after != before {
			t.Errorf("the node's IPv6 changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})

	t.Run("the tenant's own IPv6", func(t *testing.T) {
		mac, err := rtnl.HardwareAddr(tl.vm2, "eth0")
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort(netlab.LinkLocal(mac).WithZone("eth0").String(), probePort)
		if err := netlab.DialTCP(tl.vm, addr, 5*time.Second); err != nil {
			t.Errorf("a VM cannot reach the other VM of its network over IPv6 link-local %s: %v", addr, err)
		}
	})
}

// TestRootTenantIPv4: over IPv4 a VM reaches the node only on the ports
// meant for tenants, never the farm's router or LAN, and the internet
// through NAT; a VM with a public IP likewise, with the farm's router as
// its next hop, and the internet reaches it.
func TestRootTenantIPv4(t *testing.T) {
	tl := newTenantLab(t)
	_, fromInternet := netlab.ListenTCP(t, tl.lab.Internet, tl.internet)
	nodeAt := func(ip netip.Addr, port string) string { return net.JoinHostPort(ip.String(), port) }

	refused := []struct{ what, addr string }{
		{"the node's LAN address", nodeAt(tl.nodeIP, probePort)},
		{"the node's side of the resource's link", nodeAt(PublicGateway, probePort)},
		{"the farm's router", tl.router},
		{"another host of the farm's LAN", nodeAt(tl.otherIP, probePort)},
	}
	for _, c := range []struct {
		name, vm string
		refused  []struct{ what, addr string }
	}{
		{"VM on a network", tl.vm, refused},
		{"VM with a public IP", tl.pvm, append(refused, struct{ what, addr string }{"a network resource", nodeAt(tl.public, probePort)})},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range c.refused {
				if err := netlab.DialTCP(c.vm, r.addr, dialWait); err == nil {
					t.Errorf("%s: the VM connects to %s", r.what, r.addr)
				}
			}
			if err := netlab.DialTCP(c.vm, nodeAt(tl.nodeIP, tenantPort), 5*time.Second); err != nil {
				t.Errorf("the VM cannot reach the node's port %s meant for tenants: %v", tenantPort, err)
			}
			if err := netlab.DialTCP(c.vm, tl.internet, 5*time.Second); err != nil {
				t.Fatalf("the VM cannot reach the internet: %v", err)
			}
			select {
			case from := <-fromInternet:
				want := tl.nodeIP
				if c.vm == tl.pvm {
					want = netip.MustParseAddr("10.99.0.200")
				}
				if from.Addr() != want {
					t.Errorf("the internet sees the VM as %s, want %s", from.Addr(), want)
				}
			case <-time.After(5 * time.Second):
				t.Error("the internet host saw no connection")
			}
		})
	}

	t.Run("the internet reaches the public VM", func(t *testing.T) {
		if err := netlab.DialTCP(tl.lab.Internet, "10.99.0.200:"+probePort, 5*time.Second); err != nil {
			t.Errorf("internet to the VM's public IP: %v", err)
		}
	})

	t.Run("the tenant's own network", func(t *testing.T) {
		if err := netlab.DialTCP(tl.vm, "10.20.2.6:"+probePort, 5*time.Second); err != nil {
			t.Errorf("VM to VM on the bridge: %v", err)
		}
		if ok, out := netlab.Ping(tl.vm, netip.MustParseAddr("10.20.2.1"), 1); !ok {
			t.Errorf("VM to its gateway: %s", out)
		}
	})

	// A VM that takes the node's bridge for a router: frames to the
	// bridge's MAC, to the node itself and to the farm's router.
	t.Run("the bridge as a router", func(t *testing.T) {
		mac, err := rtnl.HardwareAddr(tl.node, tl.names.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		_, atNode := netlab.ListenUDP(t, tl.node, nodeAt(tl.nodeIP, "7001"))
		_, atRouter := netlab.ListenUDP(t, tl.lab.Internet, nodeAt(netlab.LANGateway, "7001"))
		for _, dst := range []netip.Addr{tl.nodeIP, netlab.LANGateway} {
			for _, argv := range [][]string{
				{"ip", "route", "replace", dst.String() + "/32", "dev", "eth0"},
				{"ip", "neigh", "replace", dst.String(), "lladdr", mac.String(), "dev", "eth0", "nud", "permanent"},
			} {
				if _, err := netns.Run(tl.vm, "", argv...); err != nil {
					t.Fatal(err)
				}
			}
			for range 3 {
				if err := netlab.SendUDP(tl.vm, nodeAt(dst, "7001"), "forged "+dst.String()); err != nil {
					t.Fatal(err)
				}
			}
		}
		testutil.Never(t, forgedUDPWindow, "a forged packet crossed the node's bridge", func() (bool, error) {
			for who, got := range map[string]<-chan string{"the node": atNode, "the farm's router": atRouter} {
				select {
				case m := <-got:
					return true, fmt.Errorf("%s received %q sent to the node's bridge", who, m)
				default:
				}
			}
			return false, nil
		})
	})
}

// TestRootTapNoIPv6: the taps the manager really makes (private and
// public) have no IPv6, and a tap not named as a tenant link is refused:
// the firewall would not know it.
func TestRootTapNoIPv6(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	m := labManagers(t, l)[0]
	k := newKey(t)
	wl := netWorkload(t, 7, "net", gridtypes.Network{NetworkIPRange: ipnet("10.20.0.0/16"), Subnet: ipnet("10.20.2.0/24"), WGPrivateKey: k.priv, WGListenPort: 6001})
	if _, err := m.Provision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
	node := l.Nodes[0].NS
	tap, ptap := "t-tap"+l.ID, "p-tap"+l.ID
	if _, err := m.Attach(7, "net", tap); err != nil {
		t.Fatal(err)
	}
	if err := m.AttachPublic(ptap, netip.MustParseAddr("10.99.0.200")); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{tap, ptap} {
		t.Cleanup(func() { _ = m.Detach(link) })
		for key, want := range map[string]string{"disable_ipv6": "1", "accept_ra": "0", "addr_gen_mode": "1"} {
			if got := sysctl(t, node, "net/ipv6/conf/"+link+"/"+key); got != want {
				t.Errorf("%s %s: got %s, want %s", link, key, got, want)
			}
		}
	}
	for _, bad := range []string{"eth1", "x" + l.ID, "t-"} {
		if _, err := m.Attach(7, "net", bad); err == nil || !strings.Contains(err.Error(), "tenant link") {
			t.Errorf("tap %q: got %v, want a refusal", bad, err)
		}
		if rtnl.LinkExists(node, bad) {
			t.Errorf("tap %q was made", bad)
			_ = rtnl.DeleteLink(node, bad)
		}
	}
}

// TestRootWireGuardPort: a network may not take a port below 1024 (UDP 68
// is the node's DHCP client) or one of the node's own; nothing is left
// behind, and the node can still bind 68.
func TestRootWireGuardPort(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	n := l.Nodes[0]
	m := NewManager(Config{Prefix: n.Prefix, NodeNS: n.NS, Uplink: true, ReservedPorts: []uint16{9900}}, HostSystem(testutil.Logger(t)), testutil.Logger(t))
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	k := newKey(t)
	nw := gridtypes.Network{NetworkIPRange: ipnet("10.20.0.0/16"), Subnet: ipnet("10.20.2.0/24"), WGPrivateKey: k.priv}
	for _, c := range []struct {
		port uint16
		want string
	}{{68, "below 1024"}, {1023, "below 1024"}, {9900, "used by the node"}} {
		nw.WGListenPort = c.port
		if _, err := m.Provision(ctx, netWorkload(t, 7, "net", nw)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("port %d: got %v, want an error with %q", c.port, err, c.want)
		}
		if ns := NamesOf(n.Prefix, gridtypes.NetID(7, "net")).NS; netns.Exists(ns) {
			t.Errorf("port %d: namespace %s left", c.port, ns)
		}
	}
	// The DHCP client's socket (UDP 68) can still be had.
	if err := netns.Do(n.NS, func() error {
		pc, err := net.ListenPacket("udp4", "0.0.0.0:68")
		if err != nil {
			return err
		}
		return pc.Close()
	}); err != nil {
		t.Errorf("binding UDP 68 in the node namespace: %v", err)
	}
	// An update to a refused port leaves the resource as it was.
	nw.WGListenPort = 6001
	if _, err := m.Provision(ctx, netWorkload(t, 7, "net", nw)); err != nil {
		t.Fatal(err)
	}
	nw.WGListenPort = 68
	if _, err := m.Update(ctx, netWorkload(t, 7, "net", nw)); err == nil {
		t.Error("update to port 68: got no error")
	}
	if got := fmt.Sprint(m.WGPorts()); got != "[6001 9900]" {
		t.Errorf("ports: got %s, want [6001 9900] (the resource's, the node's)", got)
	}
}

// TestRootRulesetsLoad: every form of the node's rulesets loads (a public
// farm router is named in the forward filter; the lab's is private).
func TestRootRulesetsLoad(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	for _, r := range []string{
		NodeRuleset(netip.Addr{}),
		NodeRuleset(netip.MustParseAddr("192.0.2.1")),
		InputRuleset("zos-in-0a1b2c3d", nil),
		InputRuleset("zos-in", []uint16{443, 9900}),
	} {
		if err := (nft.Tables{}).Apply(l.Nodes[0].NS, r); err != nil {
			t.Errorf("loading\n%s: %v", r, err)
		}
	}
	out, err := nft.Tables{}.Table(l.Nodes[0].NS, "inet", "zos-nr")
	if err != nil || !strings.Contains(out, "192.0.2.1") {
		t.Errorf("the farm's router is not in the forward filter: %s %v", out, err)
	}
}
