package network

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/mesh"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// Root tests: a lab with an "internet" namespace and one namespace per
// node on a farm LAN; managers run as the nodes would, each with its node
// namespace as uplink.

func requireNet(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "nft")
	testutil.RequireBinary(t, "busybox")
	testutil.RequireFile(t, "/dev/net/tun")
}

func labManagers(t testing.TB, l *netlab.Lab) []*Manager {
	t.Helper()
	var ms []*Manager
	for _, n := range l.Nodes {
		m := NewManager(Config{Prefix: n.Prefix, NodeNS: n.NS, Uplink: true}, HostSystem(testutil.Logger(t)), testutil.Logger(t))
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := m.Close(); err != nil {
				t.Errorf("closing manager: %v", err)
			}
		})
		ms = append(ms, m)
	}
	return ms
}

type key struct{ priv, pub string }

func newKey(t testing.TB) key {
	priv, pub, err := mesh.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key{priv, pub}
}

func netWorkload(t testing.TB, twin uint32, name string, n gridtypes.Network) *provision.Workload {
	t.Helper()
	wl := gridtypes.Workload{Name: name, Type: gridtypes.NetworkType}
	raw, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	wl.Data = raw
	d := &gridtypes.Deployment{TwinID: twin, ContractID: 1}
	return &provision.Workload{Workload: wl, ID: gridtypes.NewWorkloadID(twin, 1, name), Deployment: d}
}

func ipnet(s string) gridtypes.IPNet { return gridtypes.MustParseIPNet(s) }

// pair returns the two resources of one network across two nodes.
func pair(t testing.TB, l *netlab.Lab, rng string, a, b byte, pa, pb uint16) (gridtypes.Network, gridtypes.Network) {
	ka, kb := newKey(t), newKey(t)
	sub := func(x byte) string { return strings.Replace(rng, ".0.0/16", "."+itoa(x)+".0/24", 1) }
	wgip := func(x byte) string {
		p := mesh.WGAddress(netip.MustParsePrefix(sub(x)))
		return p.Addr().String() + "/32"
	}
	na := gridtypes.Network{NetworkIPRange: ipnet(rng), Subnet: ipnet(sub(a)), WGPrivateKey: ka.priv, WGListenPort: pa,
		Peers: []gridtypes.Peer{{Subnet: ipnet(sub(b)), WGPublicKey: kb.pub, AllowedIPs: []gridtypes.IPNet{ipnet(sub(b)), ipnet(wgip(b))},
			Endpoint: netip.AddrPortFrom(l.Nodes[1].IP, pb).String()}}}
	nb := gridtypes.Network{NetworkIPRange: ipnet(rng), Subnet: ipnet(sub(b)), WGPrivateKey: kb.priv, WGListenPort: pb,
		Peers: []gridtypes.Peer{{Subnet: ipnet(sub(a)), WGPublicKey: ka.pub, AllowedIPs: []gridtypes.IPNet{ipnet(sub(a)), ipnet(wgip(a))},
			Endpoint: netip.AddrPortFrom(l.Nodes[0].IP, pa).String()}}}
	return na, nb
}

func itoa(b byte) string { return strconv.Itoa(int(b)) }

func gw(subnet gridtypes.IPNet) netip.Addr {
	return netip.MustParsePrefix(subnet.String()).Masked().Addr().Next()
}

func TestRootMesh(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 2)
	ms := labManagers(t, l)
	ctx := context.Background()

	// Twin 7's network across both nodes.
	na, nb := pair(t, l, "10.20.0.0/16", 1, 2, 6001, 6002)
	wa, wb := netWorkload(t, 7, "net", na), netWorkload(t, 7, "net", nb)
	if _, err := ms[0].Provision(ctx, wa); err != nil {
		t.Fatal(err)
	}
	if _, err := ms[1].Provision(ctx, wb); err != nil {
		t.Fatal(err)
	}
	idA := NamesOf(l.Nodes[0].Prefix, gridtypes.NetID(7, "net"))
	idB := NamesOf(l.Nodes[1].Prefix, gridtypes.NetID(7, "net"))

	t.Run("wireguard handshake and gateways", func(t *testing.T) {
		if ok, out := pingRetry(idA.NS, gw(nb.Subnet)); !ok {
			t.Fatalf("node 1 cannot ping node 2's gateway %s: %s", gw(nb.Subnet), out)
		}
		if ok, out := pingRetry(idB.NS, gw(na.Subnet)); !ok {
			t.Fatalf("node 2 cannot ping node 1's gateway: %s", out)
		}
		if ok, out := pingRetry(idA.NS, mesh.WGAddress(netip.MustParsePrefix(nb.Subnet.String())).Addr()); !ok {
			t.Fatalf("node 1 cannot ping node 2's wireguard address: %s", out)
		}
		if _, err := os.Stat("/usr/bin/wg"); err == nil {
			// In the resource namespace: a kernel device is only seen there; a
			// wireguard-go one through its UAPI socket from anywhere.
			out, err := netns.Run(idA.NS, "", "wg", "show", idA.WG, "latest-handshakes")
			if err != nil || strings.Contains(out, "\t0\n") || strings.TrimSpace(out) == "" {
				t.Errorf("wg show %s: got %q (%v), want a handshake", idA.WG, out, err)
			}
		}
	})

	t.Run("internet through NAT", func(t *testing.T) {
		if ok, out := pingRetry(idA.NS, netlab.InternetHost); !ok {
			t.Fatalf("resource cannot reach the internet: %s", out)
		}
	})

	t.Run("outbound SMTP is refused", func(t *testing.T) {
		for _, c := range []struct {
			port string
			ok   bool
		}{{"8080", true}, {"25", false}, {"587", false}} {
			var ln net.Listener
			err := netns.Do(l.Internet, func() (err error) {
				ln, err = net.Listen("tcp", net.JoinHostPort(netlab.InternetHost.String(), c.port))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			err = netns.Do(idA.NS, func() error {
				conn, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
				if err == nil {
					conn.Close()
				}
				return err
			})
			ln.Close()
			if (err == nil) != c.ok {
				t.Errorf("port %s: got dial error %v, want success %v", c.port, err, c.ok)
			}
		}
	})

	t.Run("not reachable from the internet", func(t *testing.T) {
		// Give the internet every route it could want towards node 1.
		for _, p := range []string{"10.20.0.0/16", "100.127.0.0/16", "100.64.0.0/16"} {
			if err := rtnl.AddRoute(l.Internet, rtnl.Route{Dst: netip.MustParsePrefix(p), Dev: "lan", Via: l.Nodes[0].IP}); err != nil {
				t.Fatal(err)
			}
		}
		ms[0].mu.Lock()
		pub := ms[0].res[gridtypes.NetID(7, "net")].r.Public
		ms[0].mu.Unlock()
		for _, a := range []netip.Addr{gw(na.Subnet), pub} {
			if ok, out := netlab.Ping(l.Internet, a, 1); ok {
				t.Errorf("the internet reaches %s: %s", a, out)
			}
		}
		// The node's own address answers: the LAN works.
		if ok, out := netlab.Ping(l.Internet, l.Nodes[0].IP, 1); !ok {
			t.Errorf("the internet cannot reach node 1 itself: %s", out)
		}
	})

	t.Run("two twins are isolated", func(t *testing.T) {
		k := newKey(t)
		other := gridtypes.Network{NetworkIPRange: ipnet("10.30.0.0/16"), Subnet: ipnet("10.30.1.0/24"), WGPrivateKey: k.priv, WGListenPort: 6003}
		wo := netWorkload(t, 8, "net", other)
		if _, err := ms[0].Provision(ctx, wo); err != nil {
			t.Fatal(err)
		}
		ido := NamesOf(l.Nodes[0].Prefix, gridtypes.NetID(8, "net"))
		ms[0].mu.Lock()
		pubA := ms[0].res[gridtypes.NetID(7, "net")].r.Public
		pubO := ms[0].res[gridtypes.NetID(8, "net")].r.Public
		ms[0].mu.Unlock()
		for _, c := range []struct {
			from string
			to   netip.Addr
		}{{ido.NS, gw(na.Subnet)}, {ido.NS, gw(nb.Subnet)}, {ido.NS, pubA}, {idA.NS, gw(other.Subnet)}, {idA.NS, pubO}} {
			if ok, out := netlab.Ping(c.from, c.to, 1); ok {
				t.Errorf("%s reaches %s: %s", c.from, c.to, out)
			}
		}
		if err := ms[0].Deprovision(ctx, wo); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bad input leaves nothing", func(t *testing.T) {
		k := newKey(t)
		taken := gridtypes.Network{NetworkIPRange: ipnet("10.40.0.0/16"), Subnet: ipnet("10.40.1.0/24"), WGPrivateKey: k.priv, WGListenPort: 6001}
		if _, err := ms[0].Provision(ctx, netWorkload(t, 9, "net", taken)); err == nil || !strings.Contains(err.Error(), "taken") {
			t.Errorf("port taken: got %v, want an error", err)
		}
		bad := taken
		bad.WGListenPort = 6004
		bad.Peers = []gridtypes.Peer{{Subnet: ipnet("10.40.2.0/24"), WGPublicKey: newKey(t).pub, AllowedIPs: []gridtypes.IPNet{ipnet("10.40.2.0/24")}, Endpoint: "node.example:1"}}
		if _, err := ms[0].Provision(ctx, netWorkload(t, 9, "net", bad)); err == nil || !strings.Contains(err.Error(), "endpoint") {
			t.Errorf("bad endpoint: got %v, want an error", err)
		}
		if ns := NamesOf(l.Nodes[0].Prefix, gridtypes.NetID(9, "net")).NS; netns.Exists(ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	})

	t.Run("update peers", func(t *testing.T) {
		// Drop the peer: node 2's gateway becomes unreachable; put it back.
		up := na
		up.Peers = nil
		if _, err := ms[0].Update(ctx, netWorkload(t, 7, "net", up)); err != nil {
			t.Fatal(err)
		}
		if ok, _ := netlab.Ping(idA.NS, gw(nb.Subnet), 1); ok {
			t.Errorf("peer still reachable after removal")
		}
		if _, err := ms[0].Update(ctx, wa); err != nil {
			t.Fatal(err)
		}
		if ok, out := pingRetry(idA.NS, gw(nb.Subnet)); !ok {
			t.Errorf("peer unreachable after being put back: %s", out)
		}
	})

	t.Run("delete leaves nothing", func(t *testing.T) {
		for i, w := range []*provision.Workload{wa, wb} {
			if err := ms[i].Deprovision(ctx, w); err != nil {
				t.Fatal(err)
			}
		}
		for i, nn := range []Names{idA, idB} {
			if netns.Exists(nn.NS) {
				t.Errorf("namespace %s left", nn.NS)
			}
			for _, link := range []string{nn.Bridge, nn.BridgeVeth, nn.PublicVeth} {
				if rtnl.LinkExists(l.Nodes[i].NS, link) {
					t.Errorf("link %s left in %s", link, l.Nodes[i].NS)
				}
			}
			if _, err := os.Stat("/var/run/wireguard/" + nn.WG + ".sock"); err == nil {
				t.Errorf("UAPI socket of %s left", nn.WG)
			}
			addrs, err := rtnl.Addrs(l.Nodes[i].NS)
			if err != nil {
				t.Fatal(err)
			}
			if len(addrs) != 1 {
				t.Errorf("links left in %s: %v", l.Nodes[i].NS, addrs)
			}
		}
		if ps := ms[0].WGPorts(); len(ps) != 0 {
			t.Errorf("ports after delete: got %v, want none", ps)
		}
	})
}

// pingRetry pings for up to 10 s: the first handshake takes a moment.
func pingRetry(ns string, a netip.Addr) (bool, string) {
	var ok bool
	var out string
	_ = testutil.Poll(10*time.Second, func() (bool, error) {
		ok, out = netlab.Ping(ns, a, 1)
		return ok, nil
	})
	return ok, out
}

// TestRootNoLeak: a resource's goroutines (wireguard-go device, UAPI
// server) end with it.
func TestRootNoLeak(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	m := labManagers(t, l)[0]
	testutil.NoLeaks(t)
	k := newKey(t)
	wl := netWorkload(t, 5, "leak", gridtypes.Network{NetworkIPRange: ipnet("10.50.0.0/16"), Subnet: ipnet("10.50.2.0/24"), WGPrivateKey: k.priv, WGListenPort: 6100})
	if _, err := m.Provision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
	if err := m.Deprovision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
}

// TestRootLeftovers: a node that did not stop cleanly finds its resources'
// namespaces and links at start and removes them.
func TestRootLeftovers(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	m := labManagers(t, l)[0]
	k := newKey(t)
	wl := netWorkload(t, 5, "crash", gridtypes.Network{NetworkIPRange: ipnet("10.60.0.0/16"), Subnet: ipnet("10.60.2.0/24"), WGPrivateKey: k.priv, WGListenPort: 6200})
	if _, err := m.Provision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
	// The crash: the process (and so its device) goes, the objects stay.
	id := gridtypes.NetID(5, "crash")
	m.mu.Lock()
	nn := m.res[id].r.Names
	_ = m.res[id].dev.Close()
	delete(m.res, id)
	m.mu.Unlock()
	if !netns.Exists(nn.NS) || !rtnl.LinkExists(l.Nodes[0].NS, nn.Bridge) {
		t.Fatal("setup: the resource is not there")
	}
	m2 := NewManager(m.cfg, HostSystem(testutil.Logger(t)), testutil.Logger(t))
	if err := m2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m2.Close() })
	if netns.Exists(nn.NS) {
		t.Errorf("namespace %s left after start", nn.NS)
	}
	for _, link := range []string{nn.Bridge, nn.BridgeVeth, nn.PublicVeth} {
		if rtnl.LinkExists(l.Nodes[0].NS, link) {
			t.Errorf("link %s left after start", link)
		}
	}
}
