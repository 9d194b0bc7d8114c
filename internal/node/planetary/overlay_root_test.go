package planetary

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/network/netlab/yggpeer"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/nft"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

const peerPort = 9651

// A farm LAN with its internet (netlab): a public yggdrasil peer (the real
// daemon, yggpeer) in the internet namespace, a node in its namespace
// peering with it through the farm router, and a namespace standing for a
// VM on the node's /64. The VM
// is reached from the public peer over the overlay (ping and TCP), a
// spoofed overlay source from the VM is dropped at the node, and latency
// and throughput are measured over the overlay and over the LAN.
func TestRootPlanetaryVMReachedFromPublicPeer(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, "/dev/net/tun")
	testutil.RequireBinary(t, "busybox")
	testutil.RequireBinary(t, "redis-cli")
	lab := netlab.New(t, 1)
	node := lab.Nodes[0]
	for _, ns := range []string{lab.Internet, node.NS} {
		must(t, netns.Sysctl(ns, "net/ipv6/conf/default/accept_dad", "0"))
		must(t, netns.Sysctl(ns, "net/ipv6/conf/all/accept_dad", "0"))
	}

	// the public peer: the real yggdrasil daemon (no filter of its own, so
	// what the test serves on it, 7000 and iperf3's 5201, is reachable)
	public := yggpeer.Start(t, lab.Internet, yggpeer.Config{Listen: []string{fmt.Sprintf("tcp://%s:%d", netlab.LANGateway, peerPort)}})
	nd := startNode(t, node.NS, Config{Peers: []string{fmt.Sprintf("tcp://%s:%d", netlab.LANGateway, peerPort)}, AllowPorts: []uint16{9900}})
	t.Logf("public peer %s, node %s with %s", public.Address, nd.Address, nd.Subnet)

	// the VM: a veth from the node, the node's first /64 address as its
	// gateway, the second as the VM's address, the overlay routed via the node
	vm := lab.NewNS(t, "vm")
	gw, vmAddr := nd.Subnet.Addr().Next(), nd.Subnet.Addr().Next().Next()
	must(t, rtnl.AddVeth(node.NS, "vm0", "", vm, "eth0"))
	must(t, rtnl.AddAddr(node.NS, "vm0", netip.PrefixFrom(gw, 64)))
	must(t, netns.Sysctl(node.NS, "net/ipv6/conf/all/forwarding", "1"))
	must(t, rtnl.AddAddr(vm, "eth0", netip.PrefixFrom(vmAddr, 64)))
	must(t, rtnl.AddRoute(vm, rtnl.Route{Dst: netip.MustParsePrefix("200::/7"), Dev: "eth0", Via: gw}))

	// peering and path lookup take a moment: poll with single pings
	for _, dst := range []netip.Addr{nd.Address, vmAddr} {
		var out string
		if err := testutil.Poll(30*time.Second, func() (bool, error) {
			ok, o := netlab.Ping(lab.Internet, dst, 1)
			out = o
			return ok, nil
		}); err != nil {
			t.Fatalf("public peer never reached %s over the overlay: %s", dst, out)
		}
	}
	// the process reports its peers' state (the node API shows it)
	if err := testutil.Poll(10*time.Second, func() (bool, error) {
		ps := nd.Peers()
		return len(ps) == 1 && ps[0].Up && ps[0].Address == public.Address.String(), nil
	}); err != nil {
		t.Errorf("node process peers: got %+v, want its one peer up at %s", nd.Peers(), public.Address)
	}
	if ps := public.Peers(); len(ps) != 1 || !ps[0].Up || !ps[0].Inbound || ps[0].Address != nd.Address.String() {
		t.Errorf("public peer (yggdrasil getpeers) peers: got %+v, want the node inbound at %s", ps, nd.Address)
	}
	if ok, out := netlab.Ping(vm, public.Address, 3); !ok {
		t.Errorf("VM did not reach the public peer over the overlay: %s", out)
	}

	// TCP from the public peer to a service in the VM
	_, accepted := netlab.ListenTCP(t, vm, fmt.Sprintf("[%s]:8080", vmAddr))
	if err := netlab.DialTCP(lab.Internet, fmt.Sprintf("[%s]:8080", vmAddr), 5*time.Second); err != nil {
		t.Fatalf("TCP from the public peer to the VM over the overlay: %v", err)
	}
	select {
	case from := <-accepted:
		if from.Addr() != public.Address {
			t.Errorf("VM saw the connection from %s, want the public peer's overlay address %s", from.Addr(), public.Address)
		}
	case <-time.After(5 * time.Second):
		t.Error("the VM's listener never accepted")
	}

	// a VM claiming an overlay address that is not its node's: dropped by
	// the node, so the connection never opens; its own address works
	_, accepted7000 := netlab.ListenTCP(t, lab.Internet, fmt.Sprintf("[%s]:7000", public.Address))
	spoofed := public.Subnet.Addr().Next().Next() // belongs to the public peer
	must(t, rtnl.AddAddr(vm, "eth0", netip.PrefixFrom(spoofed, 128)))
	if err := dialFrom(vm, spoofed, public.Address, 2*time.Second); err == nil {
		t.Error("a connection from a spoofed overlay source opened")
	}
	if err := dialFrom(vm, vmAddr, public.Address, 5*time.Second); err != nil {
		t.Fatalf("connection from the VM's own address: %v", err)
	}
	select {
	case from := <-accepted7000:
		if from.Addr() != vmAddr {
			t.Errorf("public peer accepted a connection from %s first, want only the VM's own %s", from.Addr(), vmAddr)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the public peer never accepted the VM's connection")
	}

	// the node itself: from the overlay only its tenant ports (9900 here,
	// where the node's 0-db answers on every IPv6 address of its namespace)
	serveZDB(t, node.NS, "[::]:9900")
	if out, err := netns.Run(lab.Internet, "", "redis-cli", "-h", nd.Address.String(), "-p", "9900", "PING"); err != nil || out != "PONG\n" {
		t.Errorf("redis-cli PING to the node's 0-db over the overlay: got %q, %v, want PONG", out, err)
	}
	netlab.ListenTCP(t, node.NS, "[::]:2222")
	if err := netlab.DialTCP(lab.Internet, fmt.Sprintf("[%s]:2222", nd.Address), 2*time.Second); err == nil {
		t.Error("port 2222 of the node (not a tenant port) accepted a connection from the overlay")
	}

	overlayRTT := pingRTT(t, node.NS, public.Address)
	lanRTT := pingRTT(t, node.NS, netlab.LANGateway)
	t.Logf("figure: ping node -> public peer: overlay %v, LAN %v (ratio %.1f)", overlayRTT, lanRTT, float64(overlayRTT)/float64(lanRTT))
	if _, err := exec.LookPath("iperf3"); err == nil {
		over := iperf(t, lab.Internet, node.NS, public.Address)
		under := iperf(t, lab.Internet, node.NS, netlab.LANGateway)
		t.Logf("figure: TCP throughput node -> public peer: overlay %.0f Mbit/s, LAN %.0f Mbit/s (ratio %.2f)", over/1e6, under/1e6, over/under)
	}

	// stopped, the node's overlay leaves neither its TUN nor its filter
	if err := nd.Stop(); err != nil {
		t.Fatal(err)
	}
	if rtnl.LinkExists(node.NS, "ygg0") {
		t.Error("ygg0 is still there after the overlay stopped")
	}
	tables, err := nft.Tables{}.List(node.NS)
	must(t, err)
	if slices.Contains(tables, "inet "+Table) {
		t.Errorf("table %s is still there after the overlay stopped: %v", Table, tables)
	}
}

// serveZDB runs a 0-db server on addr in ns until the test ends.
func serveZDB(t *testing.T, ns, addr string) {
	t.Helper()
	store, err := zdb.Open(zdb.Config{DataDir: t.TempDir(), IndexDir: t.TempDir()}, testutil.Logger(t))
	must(t, err)
	t.Cleanup(func() { store.Close() })
	var ln net.Listener
	must(t, netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp6", addr); return err }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = zdb.NewServer(zdb.ServerConfig{}, testutil.Logger(t), store).Serve(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// dialFrom opens (and closes) a TCP connection from src (an address of
// ns) to dst:7000 within timeout.
func dialFrom(ns string, src, dst netip.Addr, timeout time.Duration) error {
	return netns.Do(ns, func() error {
		d := net.Dialer{Timeout: timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		c, err := d.Dial("tcp", netip.AddrPortFrom(dst, 7000).String())
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// pingRTT is the average round trip of 10 pings from ns to dst.
func pingRTT(t *testing.T, ns string, dst netip.Addr) time.Duration {
	t.Helper()
	out, err := netns.Run(ns, "", "busybox", "ping", "-c", "10", "-i", "0.2", dst.String())
	if err != nil {
		t.Fatalf("ping %s: %v", dst, err)
	}
	var min, avg, max float64
	for _, l := range splitLines(out) {
		if n, _ := fmt.Sscanf(l, "round-trip min/avg/max = %f/%f/%f ms", &min, &avg, &max); n == 3 {
			return time.Duration(avg * float64(time.Millisecond))
		}
	}
	t.Fatalf("no round trip in ping output: %s", out)
	return 0
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := range len(s) {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// iperf measures TCP throughput (bit/s) from clientNS to an iperf3 server
// on dst in serverNS.
func iperf(t *testing.T, serverNS, clientNS string, dst netip.Addr) float64 {
	t.Helper()
	srv := exec.Command("iperf3", "-s", "-1", "-B", dst.String(), "-p", "5201")
	must(t, netns.Start(serverNS, srv))
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = srv.Process.Kill()
			<-done
		}
	})
	var r struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	var out string
	// until the server listens, iperf3 -J reports "connection refused" in
	// its JSON (and sometimes exits 0)
	if err := testutil.Poll(15*time.Second, func() (bool, error) {
		o, err := netns.Run(clientNS, "", "iperf3", "-c", dst.String(), "-p", "5201", "-t", "3", "-J")
		out = o
		r.Error, r.End.SumReceived.BitsPerSecond = "", 0
		if err != nil || json.Unmarshal([]byte(o), &r) != nil || r.Error != "" {
			return false, nil
		}
		return true, nil
	}); err != nil {
		t.Fatalf("iperf3 to %s: %s", dst, out)
	}
	if r.End.SumReceived.BitsPerSecond <= 0 {
		t.Fatalf("iperf3 to %s measured nothing: %s", dst, out)
	}
	return r.End.SumReceived.BitsPerSecond
}
