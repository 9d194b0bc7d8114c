package lab

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
)

// The farm LAN of a lab, as the tests' network lab (internal/node/network/
// netlab): a namespace standing for the internet holds the LAN bridge and
// the farm router's address; each node has a namespace on the LAN that
// stands for its root namespace (zos node --netns).
var (
	// InternetHost is an address of the internet namespace, outside the LAN.
	InternetHost = netip.MustParseAddr("198.51.100.1")
	// LANGateway is the farm router's address on the LAN.
	LANGateway = netip.MustParseAddr("10.99.0.1")
)

// Net is the lab's network: the names of its namespaces.
type Net struct {
	Internet string    `json:"internet"`
	Nodes    []NetNode `json:"nodes"`
}

// NetNode is a node's namespace on the LAN.
type NetNode struct {
	NS     string     `json:"ns"`
	Prefix string     `json:"prefix"` // of the node's kernel objects
	IP     netip.Addr `json:"ip"`
}

// nsPrefix is the prefix of every namespace of lab id (its own and its
// nodes' network resources).
func nsPrefix(id string) string { return "zl" + id }

// planNet names the namespaces and addresses of lab id with n nodes.
func planNet(id string, n int) Net {
	net := Net{Internet: nsPrefix(id) + "-inet"}
	for i := range n {
		net.Nodes = append(net.Nodes, NetNode{
			NS:     fmt.Sprintf("%s-n%d", nsPrefix(id), i+1),
			Prefix: fmt.Sprintf("%s%d-", nsPrefix(id), i+1),
			IP:     netip.AddrFrom4([4]byte{10, 99, 0, byte(11 + i)}),
		})
	}
	return net
}

// build makes the network; on error, what it made is removed.
func (n Net) build() (err error) {
	defer func() {
		if err != nil {
			err = errors.Join(err, n.remove())
		}
	}()
	if err := netns.Create(n.Internet); err != nil {
		return err
	}
	steps := []func() error{
		func() error { return rtnl.SetUp(n.Internet, "lo") },
		func() error { return rtnl.AddAddr(n.Internet, "lo", netip.PrefixFrom(InternetHost, 32)) },
		func() error { return rtnl.AddBridge(n.Internet, "lan") },
		func() error { return rtnl.AddAddr(n.Internet, "lan", netip.PrefixFrom(LANGateway, 24)) },
		func() error { return netns.Sysctl(n.Internet, "net/ipv4/ip_forward", "1") },
	}
	for i, nd := range n.Nodes {
		steps = append(steps,
			func() error { return netns.Create(nd.NS) },
			func() error { return rtnl.SetUp(nd.NS, "lo") },
			func() error { return rtnl.AddVeth(n.Internet, fmt.Sprintf("lan%d", i+1), "lan", nd.NS, "eth0") },
			func() error { return rtnl.AddAddr(nd.NS, "eth0", netip.PrefixFrom(nd.IP, 24)) },
			func() error {
				return rtnl.AddRoute(nd.NS, rtnl.Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0", Via: LANGateway})
			},
		)
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("building the lab network: %w", err)
		}
	}
	return nil
}

// remove deletes the lab's namespaces that exist (with them their links).
func (n Net) remove() error {
	var errs []error
	for _, nd := range n.Nodes {
		if netns.Exists(nd.NS) {
			errs = append(errs, netns.Delete(nd.NS))
		}
	}
	if netns.Exists(n.Internet) {
		errs = append(errs, netns.Delete(n.Internet))
	}
	return errors.Join(errs...)
}
