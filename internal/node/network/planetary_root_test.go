package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/network/netlab/yggpeer"
	"github.com/zos-go/zos/internal/node/planetary"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/nft"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// planetaryHelperEnv makes the test binary act as `zos planetary`
// (TestMain): the overlay runs as a process inside a node's namespace, as
// the node runs it, so its sockets and its TUN belong there.
const planetaryHelperEnv = "ZOS_NETWORK_PLANETARY_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(planetaryHelperEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := planetary.Main(ctx, os.Args[2:], nft.Tables{}, os.Stdout, log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startOverlay runs the overlay (the yggdrasil-go library, TUN ygg0) as a
// process in ns and stops it in t.Cleanup.
func startOverlay(t *testing.T, ns string, cfg planetary.Config) *planetary.Process {
	t.Helper()
	cfg.DataDir = t.TempDir()
	t.Setenv(planetaryHelperEnv, "1")
	p, err := planetary.StartProcess(ns, append([]string{os.Args[0], "-test.run=^$"}, cfg.Args("ygg0")...), os.Stderr, 30*time.Second)
	os.Unsetenv(planetaryHelperEnv)
	if err != nil {
		t.Fatalf("planetary in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("planetary in %s: %v", ns, err)
		}
	})
	return p
}

// planetaryVM is a namespace standing for a VM with `planetary: true`:
// the veth in for its tap, configured as vminit configures the VM's
// interface (its overlay address as a /128, 200::/7 via the node's
// fe80::1).
type planetaryVM struct {
	ns, tap string
	ip      netip.Addr
}

func attachPlanetaryVM(t *testing.T, m *Manager, subnet netip.Prefix, ns, tap string) planetaryVM {
	t.Helper()
	ip, err := PlanetaryIP(subnet, tap)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AttachPlanetary(tap, ip); err != nil {
		t.Fatalf("attaching planetary tap %s: %v", tap, err)
	}
	t.Cleanup(func() {
		if err := m.DetachPlanetary(tap); err != nil {
			t.Errorf("detaching %s: %v", tap, err)
		}
	})
	must(t, netns.Sysctl(ns, "net/ipv6/conf/all/accept_dad", "0"))
	must(t, netns.Sysctl(ns, "net/ipv6/conf/eth0/accept_dad", "0"))
	must(t, rtnl.AddAddr(ns, "eth0", netip.PrefixFrom(ip, 128)))
	must(t, rtnl.AddRoute(ns, rtnl.Route{Dst: Overlay, Dev: "eth0", Via: RouterLinkLocal}))
	return planetaryVM{ns: ns, tap: tap, ip: ip}
}

// dialFrom opens and closes a TCP connection from src (an address of ns)
// to dst within timeout.
func dialFrom(ns string, src netip.Addr, dst netip.AddrPort, timeout time.Duration) error {
	return netns.Do(ns, func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// acceptedFrom waits for one connection on accepted and checks its source.
func acceptedFrom(t *testing.T, accepted <-chan netip.AddrPort, want netip.Addr, what string) {
	t.Helper()
	select {
	case from := <-accepted:
		if from.Addr() != want {
			t.Errorf("%s: accepted a connection from %s, want %s", what, from.Addr(), want)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("%s: the listener never accepted", what)
	}
}

// A farm of two nodes running the overlay, peering with a public peer in
// the internet namespace (the real yggdrasil daemon of the same
// yggdrasil-go version, yggpeer). On node 1, VMs
// of two tenants (a, b) with `planetary: true`; on node 2 a VM c. Each VM
// is a namespace on the veth standing in for its planetary tap, set up by
// Manager.AttachPlanetary as the zmachine manager does.
func TestRootPlanetaryVMs(t *testing.T) {
	requireNet(t)
	lab := netlab.New(t, 2)
	lab.AddIPv6(t)
	for _, ns := range []string{lab.Internet, lab.Nodes[0].NS, lab.Nodes[1].NS} {
		must(t, netns.Sysctl(ns, "net/ipv6/conf/default/accept_dad", "0"))
		must(t, netns.Sysctl(ns, "net/ipv6/conf/all/accept_dad", "0"))
	}
	peer := fmt.Sprintf("tcp://%s:9651", netlab.LANGateway)
	// the public peer: the real yggdrasil daemon (no filter of its own, so
	// what the test serves on it, 7000, is reachable)
	public := yggpeer.Start(t, lab.Internet, yggpeer.Config{Listen: []string{peer}})

	vmA, vmB, vmC := lab.NewNS(t, "vma"), lab.NewNS(t, "vmb"), lab.NewNS(t, "vmc")
	tapA, tapB, tapC := PlanetaryTap(gridtypes.WorkloadID("7-1-a")), PlanetaryTap(gridtypes.WorkloadID("8-2-b")), PlanetaryTap(gridtypes.WorkloadID("9-3-c"))
	var vms [2]map[string]planetaryVM
	var overlays [2]*planetary.Process
	for i, nd := range lab.Nodes {
		sys := HostSystem(testutil.Logger(t))
		sys.Links = vethTaps{Links: sys.Links, vms: map[string]string{tapA: vmA, tapB: vmB, tapC: vmC}}
		m := NewManager(Config{Prefix: nd.Prefix, NodeNS: nd.NS, Uplink: true, TenantPorts: []uint16{9900}}, sys, testutil.Logger(t))
		must(t, m.Start())
		t.Cleanup(func() {
			if err := m.Close(); err != nil {
				t.Errorf("closing manager: %v", err)
			}
		})
		// the node's tenant port (its 0-db) is open to the overlay
		overlays[i] = startOverlay(t, nd.NS, planetary.Config{Peers: []string{peer}, AllowPorts: []uint16{9900}})
		netlab.ListenTCP(t, nd.NS, "[::]:9900")
		vms[i] = map[string]planetaryVM{}
		if i == 0 {
			vms[i]["a"] = attachPlanetaryVM(t, m, overlays[i].Subnet, vmA, tapA)
			vms[i]["b"] = attachPlanetaryVM(t, m, overlays[i].Subnet, vmB, tapB)
		} else {
			vms[i]["c"] = attachPlanetaryVM(t, m, overlays[i].Subnet, vmC, tapC)
		}
	}
	a, b, c := vms[0]["a"], vms[0]["b"], vms[1]["c"]
	t.Logf("public %s; node 1 %s (%s): a %s, b %s; node 2 %s (%s): c %s", public.Address,
		overlays[0].Address, overlays[0].Subnet, a.ip, b.ip, overlays[1].Address, overlays[1].Subnet, c.ip)

	// peering and path lookups take a moment: poll with single pings
	for _, p := range []struct {
		from string
		dst  netip.Addr
	}{{lab.Internet, a.ip}, {lab.Internet, c.ip}, {c.ns, a.ip}} {
		start := time.Now()
		if err := testutil.Poll(60*time.Second, func() (bool, error) { ok, _ := netlab.Ping(p.from, p.dst, 1); return ok, nil }); err != nil {
			_, out := netlab.Ping(p.from, p.dst, 1)
			_, pub := netlab.Ping(p.from, public.Address, 1)
			_, n2n := netlab.Ping(lab.Nodes[1].NS, overlays[0].Address, 1)
			_, n2a := netlab.Ping(lab.Nodes[1].NS, a.ip, 1)
			_, n1c := netlab.Ping(lab.Nodes[0].NS, c.ip, 1)
			_, ac := netlab.Ping(a.ns, c.ip, 1)
			t.Fatalf("%s never pinged %s over the overlay: %s\n(to the public peer: %s)\nnode2->node1 %s\nnode2->a %s\nnode1->c %s\na->c %s", p.from, p.dst, out, pub, n2n, n2a, n1c, ac)
		}
		t.Logf("%s reached %s over the overlay after %v", p.from, p.dst, time.Since(start).Round(time.Millisecond))
	}
	_, acceptA := netlab.ListenTCP(t, a.ns, fmt.Sprintf("[%s]:8080", a.ip))

	t.Run("the public peer reaches a VM's service over the overlay", func(t *testing.T) {
		if err := netlab.DialTCP(lab.Internet, fmt.Sprintf("[%s]:8080", a.ip), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		acceptedFrom(t, acceptA, public.Address, "VM a from the public peer")
	})

	t.Run("a VM on another node reaches it under its own overlay address", func(t *testing.T) {
		if err := dialFrom(c.ns, c.ip, netip.AddrPortFrom(a.ip, 8080), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		acceptedFrom(t, acceptA, c.ip, "VM a from VM c")
	})

	t.Run("another tenant's VM on the same node reaches what it listens on, as the overlay does", func(t *testing.T) {
		if err := dialFrom(b.ns, b.ip, netip.AddrPortFrom(a.ip, 8080), 5*time.Second); err != nil {
			t.Fatal(err)
		}
		acceptedFrom(t, acceptA, b.ip, "VM a from VM b")
	})

	t.Run("a VM claiming another tenant's or node's overlay address gets nothing through", func(t *testing.T) {
		_, acceptPublic := netlab.ListenTCP(t, lab.Internet, fmt.Sprintf("[%s]:7000", public.Address))
		for _, spoof := range []netip.Addr{a.ip, c.ip, overlays[0].Address, public.Address} {
			if out, err := netns.Run(b.ns, "", "ip", "addr", "add", netip.PrefixFrom(spoof, 128).String(), "dev", "eth0", "nodad"); err != nil {
				t.Fatalf("ip addr add %s: %v %s", spoof, err, out)
			}
			// dropped on the way: the dial times out (a local error, such
			// as an address the VM cannot use, would prove nothing)
			if spoof != public.Address {
				if err := dialFrom(b.ns, spoof, netip.AddrPortFrom(public.Address, 7000), dialWait); !isTimeout(err) {
					t.Errorf("VM b to the public peer from %s: got %v, want a timeout", spoof, err)
				}
			}
			if spoof != a.ip {
				if err := dialFrom(b.ns, spoof, netip.AddrPortFrom(a.ip, 8080), dialWait); !isTimeout(err) {
					t.Errorf("VM b to VM a from %s: got %v, want a timeout", spoof, err)
				}
			}
			delAddr(t, b.ns, netip.PrefixFrom(spoof, 128))
		}
		// its own address still works, and a's traffic still reaches a
		if err := dialFrom(b.ns, b.ip, netip.AddrPortFrom(public.Address, 7000), 5*time.Second); err != nil {
			t.Fatalf("VM b from its own address: %v", err)
		}
		acceptedFrom(t, acceptPublic, b.ip, "the public peer")
		if ok, out := netlab.Ping(lab.Internet, a.ip, 1); !ok {
			t.Errorf("VM a is no longer reached after b claimed its address: %s", out)
		}
	})

	t.Run("the node's services are not reachable from a VM's planetary link", func(t *testing.T) {
		// the public peer reaches the node's tenant port over the overlay...
		if err := netlab.DialTCP(lab.Internet, fmt.Sprintf("[%s]:9900", overlays[0].Address), 5*time.Second); err != nil {
			t.Fatalf("the public peer did not reach node 1's tenant port over the overlay: %v", err)
		}
		// ...the VMs do not, at its overlay address or its link-local
		for _, dst := range []string{fmt.Sprintf("[%s]:9900", overlays[0].Address), "[fe80::1%eth0]:9900"} {
			if err := netlab.DialTCP(b.ns, dst, dialWait); err == nil {
				t.Errorf("VM b connected to the node at %s", dst)
			}
		}
		if ok, _ := netlab.Ping(b.ns, overlays[0].Address, 1); ok {
			t.Errorf("VM b pinged the node's overlay address %s", overlays[0].Address)
		}
	})

	t.Run("a VM's planetary link leads to the overlay only", func(t *testing.T) {
		netlab.ListenTCP(t, lab.Internet, fmt.Sprintf("[%s]:7001", netlab.InternetHost6))
		must(t, rtnl.AddRoute(b.ns, rtnl.Route{Dst: netip.MustParsePrefix("::/0"), Dev: "eth0", Via: RouterLinkLocal}))
		if err := netlab.DialTCP(lab.Nodes[0].NS, fmt.Sprintf("[%s]:7001", netlab.InternetHost6), 5*time.Second); err != nil {
			t.Fatalf("the node itself does not reach the internet over IPv6: %v", err)
		}
		if err := dialFrom(b.ns, b.ip, netip.AddrPortFrom(netlab.InternetHost6, 7001), dialWait); err == nil {
			t.Error("VM b reached the IPv6 internet through its planetary link")
		}
	})

	// figure: VM to VM across nodes over the overlay, node to node on the LAN
	if over, under := avgRTT(t, c.ns, a.ip), avgRTT(t, lab.Nodes[1].NS, lab.Nodes[0].IP); over > 0 && under > 0 {
		t.Logf("figure: ping VM c (node 2) -> VM a (node 1) over the overlay %v, node 2 -> node 1 on the LAN %v (ratio %.1f)",
			over, under, float64(over)/float64(under))
	}

	t.Run("detached, the tap and its filter are gone", func(t *testing.T) {
		sys := HostSystem(testutil.Logger(t))
		m := NewManager(Config{Prefix: lab.Nodes[1].Prefix, NodeNS: lab.Nodes[1].NS, Uplink: true}, sys, testutil.Logger(t))
		must(t, m.DetachPlanetary(c.tap))
		if rtnl.LinkExists(lab.Nodes[1].NS, c.tap) {
			t.Errorf("tap %s is still there", c.tap)
		}
		tables, err := nft.Tables{}.List(lab.Nodes[1].NS)
		must(t, err)
		if slices.Contains(tables, "inet "+filterTable(c.tap)) {
			t.Errorf("table %s is still there: %v", filterTable(c.tap), tables)
		}
		if ok, _ := netlab.Ping(lab.Internet, c.ip, 1); ok {
			t.Errorf("VM c is still reached at %s", c.ip)
		}
	})
}

// avgRTT is the average round trip of 10 pings from ns to dst (0 when
// the output has none: a figure, not an assertion).
func avgRTT(t *testing.T, ns string, dst netip.Addr) time.Duration {
	t.Helper()
	out, err := netns.Run(ns, "", "busybox", "ping", "-c", "10", "-i", "0.2", dst.String())
	if err != nil {
		t.Logf("ping %s: %v %s", dst, err, out)
		return 0
	}
	for _, l := range strings.Split(out, "\n") {
		var lo, avg, hi float64
		if n, _ := fmt.Sscanf(l, "round-trip min/avg/max = %f/%f/%f ms", &lo, &avg, &hi); n == 3 {
			return time.Duration(avg * float64(time.Millisecond))
		}
	}
	return 0
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
