// Package netlab builds, for root tests, a farm on one machine: a
// namespace that stands for the internet (holding the farm LAN bridge and
// an "internet host" address) and one namespace per node joined to that
// LAN. Names are random; everything is removed in t.Cleanup. Only tests
// import it.
package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
)

// InternetHost is an address of the internet namespace, outside the LAN.
var InternetHost = netip.MustParseAddr("198.51.100.1")

// LANGateway is the farm router's address on the LAN.
var LANGateway = netip.MustParseAddr("10.99.0.1")

// Lab is a farm LAN with its internet.
type Lab struct {
	ID       string // random, part of every name
	Internet string // namespace of the internet and the LAN bridge
	Nodes    []Node
}

// Node is a node's namespace on the LAN.
type Node struct {
	NS     string     // stands for the node's root namespace
	Prefix string     // prefix for the node's kernel objects
	IP     netip.Addr // its LAN address
}

// New makes a lab with n nodes.
func New(t testing.TB, n int) *Lab {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	l := &Lab{ID: hex.EncodeToString(b)}
	l.Internet = "zl" + l.ID + "-inet"
	t.Cleanup(func() { l.remove(t) })
	must(t, netns.Create(l.Internet))
	must(t, rtnl.SetUp(l.Internet, "lo"))
	must(t, rtnl.AddAddr(l.Internet, "lo", netip.PrefixFrom(InternetHost, 32)))
	must(t, rtnl.AddBridge(l.Internet, "lan"))
	must(t, rtnl.AddAddr(l.Internet, "lan", netip.PrefixFrom(LANGateway, 24)))
	must(t, netns.Sysctl(l.Internet, "net/ipv4/ip_forward", "1"))
	for i := range n {
		nd := Node{
			NS:     fmt.Sprintf("zl%s-n%d", l.ID, i+1),
			Prefix: fmt.Sprintf("zl%s%d-", l.ID, i+1),
			IP:     netip.AddrFrom4([4]byte{10, 99, 0, byte(11 + i)}),
		}
		must(t, netns.Create(nd.NS))
		l.Nodes = append(l.Nodes, nd)
		must(t, rtnl.SetUp(nd.NS, "lo"))
		must(t, rtnl.AddVeth(l.Internet, fmt.Sprintf("lan%d", i+1), "lan", nd.NS, "eth0"))
		must(t, rtnl.AddAddr(nd.NS, "eth0", netip.PrefixFrom(nd.IP, 24)))
		must(t, rtnl.AddRoute(nd.NS, rtnl.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0", Via: LANGateway}))
	}
	return l
}

func (l *Lab) remove(t testing.TB) {
	for _, n := range l.Nodes {
		if err := netns.Delete(n.NS); err != nil {
			t.Errorf("removing %s: %v", n.NS, err)
		}
	}
	if err := netns.Delete(l.Internet); err != nil {
		t.Errorf("removing %s: %v", l.Internet, err)
	}
}

// Ping pings addr from namespace ns (busybox ping) and reports whether an
// answer came.
func Ping(ns string, addr netip.Addr, count int) (bool, string) {
	out, err := netns.Run(ns, "", "busybox", "ping", "-c", fmt.Sprint(count), "-W", "1", addr.String())
	return err == nil && !strings.Contains(out, "100% packet loss"), out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
