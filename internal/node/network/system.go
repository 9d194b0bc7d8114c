package network

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/nft"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/sys/wg"
)

// The kernel seams of the module. In every one, ns "" is the node
// manager's own namespace.

// Namespaces makes, lists and removes named network namespaces, and
// connects from inside one.
type Namespaces interface {
	Create(name string) error
	// Delete removes name; a missing one is no error.
	Delete(name string) error
	List(prefix string) ([]string, error)
	// Dial connects from inside namespace ns.
	Dial(ctx context.Context, ns, network, addr string) (net.Conn, error)
}

// Links makes and removes links. Every link it makes is for tenants and
// has no IPv6 (turned off before the link first comes up: no address, no
// router advertisement accepted); for a veth that is the end made in ns.
type Links interface {
	AddBridge(ns, name string) error
	AddVeth(ns, name, master, peerNS, peer string) error
	// AddTap makes a persistent tap enslaved to bridge master ("": none;
	// an existing tap is enslaved again).
	AddTap(ns, name, master string) error
	// Delete removes link name; a missing one is no error.
	Delete(ns, name string) error
}

// Interfaces lists and sets up existing links.
type Interfaces interface {
	// List returns the links of ns whose name starts with prefix.
	List(ns, prefix string) ([]string, error)
	Up(ns, link string) error
	AddAddr(ns, link string, p netip.Prefix) error
	// Addrs returns link's addresses but the link-local ones.
	Addrs(ns, link string) ([]netip.Prefix, error)
}

// Routes reads and changes a namespace's IPv4 routes.
type Routes interface {
	// Default is the link and gateway of ns's IPv4 default route ("" and
	// an invalid address when none).
	Default(ns string) (string, netip.Addr, error)
	Add(ns string, r Route) error
	Delete(ns string, r Route) error
}

// Sysctls sets kernel parameters of a namespace.
type Sysctls interface {
	// Set writes value to key (with slashes: "net/ipv4/ip_forward").
	Set(ns, key, value string) error
	// DisableIPv6 turns IPv6 off on link ("all" and "default": every
	// link of ns, present and future).
	DisableIPv6(ns, link string) error
}

// Firewall loads nftables rulesets.
type Firewall interface {
	// Apply loads ruleset into ns atomically.
	Apply(ns, ruleset string) error
}

// NDP proxies IPv6 neighbour discovery: with proxy_ndp on link, ns answers
// solicitations for ip there (a public-IPv6 VM's address on the uplink).
type NDP interface {
	AddProxy(ns, link string, ip netip.Addr) error
	// DeleteProxy removes the entry; a missing one is no error.
	DeleteProxy(ns, link string, ip netip.Addr) error
	// FlushProxies removes every entry of link.
	FlushProxies(ns, link string) error
}

// WireGuard starts WireGuard devices: the TUN interface name inside tunNS,
// the UDP sockets in sockNS.
type WireGuard interface {
	Start(name, tunNS, sockNS string) (Device, error)
}

// Device is a running WireGuard device.
type Device interface {
	// Configure sets key, port and peers (replacing every peer) and
	// brings the device up.
	Configure(key [32]byte, port uint16, peers []Peer) error
	Close() error
}

// System is everything the module needs from the kernel.
type System struct {
	NS        Namespaces
	Links     Links
	Ifaces    Interfaces
	Routes    Routes
	Sysctls   Sysctls
	Firewall  Firewall
	WireGuard WireGuard
	NDP       NDP
}

func (s System) validate() error {
	if s.NS == nil || s.Links == nil || s.Ifaces == nil || s.Routes == nil || s.Sysctls == nil || s.Firewall == nil || s.WireGuard == nil || s.NDP == nil {
		return fmt.Errorf("incomplete network system dependencies")
	}
	return nil
}

// HostSystem is the System of a live machine: named namespaces, routing
// netlink, /proc/sys, the nft binary and wireguard-go (logging to log).
func HostSystem(log *slog.Logger) System {
	return System{
		NS:        hostNamespaces{},
		Links:     hostLinks{},
		Ifaces:    hostInterfaces{},
		Routes:    hostRoutes{},
		Sysctls:   hostSysctls{},
		Firewall:  nft.Tables{},
		WireGuard: hostWireGuard{log: log},
		NDP:       hostNDP{},
	}
}

var (
	_ Namespaces = hostNamespaces{}
	_ Links      = hostLinks{}
	_ Interfaces = hostInterfaces{}
	_ Routes     = hostRoutes{}
	_ Sysctls    = hostSysctls{}
	_ Firewall   = nft.Tables{}
	_ WireGuard  = hostWireGuard{}
	_ NDP        = hostNDP{}
)

type hostNamespaces struct{}

func (hostNamespaces) Create(name string) error             { return netns.Create(name) }
func (hostNamespaces) Delete(name string) error             { return netns.Delete(name) }
func (hostNamespaces) List(prefix string) ([]string, error) { return netns.List(prefix) }
func (hostNamespaces) Dial(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(ns, func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// hostLinks makes every link without IPv6.
type hostLinks struct{}

func (hostLinks) AddBridge(ns, name string) error { return rtnl.AddBridge(ns, name, rtnl.NoIPv6()) }
func (hostLinks) AddVeth(ns, name, master, peerNS, peer string) error {
	return rtnl.AddVeth(ns, name, master, peerNS, peer, rtnl.NoIPv6())
}
func (hostLinks) AddTap(ns, name, master string) error {
	return rtnl.AddTap(ns, name, master, rtnl.NoIPv6())
}
func (hostLinks) Delete(ns, name string) error { return rtnl.DeleteLink(ns, name) }

type hostInterfaces struct{}

func (hostInterfaces) List(ns, prefix string) ([]string, error) { return rtnl.Links(ns, prefix) }
func (hostInterfaces) Up(ns, link string) error                 { return rtnl.SetUp(ns, link) }
func (hostInterfaces) AddAddr(ns, link string, p netip.Prefix) error {
	return rtnl.AddAddr(ns, link, p)
}

func (hostInterfaces) Addrs(ns, link string) ([]netip.Prefix, error) {
	all, err := rtnl.Addrs(ns)
	if err != nil {
		return nil, err
	}
	return all[link], nil
}

type hostNDP struct{}

func (hostNDP) AddProxy(ns, link string, ip netip.Addr) error {
	return rtnl.AddProxyNeighbor(ns, link, ip)
}
func (hostNDP) DeleteProxy(ns, link string, ip netip.Addr) error {
	return rtnl.DeleteProxyNeighbor(ns, link, ip)
}

func (hostNDP) FlushProxies(ns, link string) error { return rtnl.FlushProxyNeighbors(ns, link) }

type hostRoutes struct{}

func (hostRoutes) Default(ns string) (string, netip.Addr, error) { return rtnl.DefaultRoute(ns) }
func (hostRoutes) Add(ns string, r Route) error {
	return rtnl.AddRoute(ns, rtnl.Route{Dst: r.Dst, Dev: r.Dev, Via: r.Via})
}
func (hostRoutes) Delete(ns string, r Route) error {
	return rtnl.DelRoute(ns, rtnl.Route{Dst: r.Dst, Dev: r.Dev, Via: r.Via})
}

type hostSysctls struct{}

func (hostSysctls) Set(ns, key, value string) error   { return netns.Sysctl(ns, key, value) }
func (hostSysctls) DisableIPv6(ns, link string) error { return rtnl.DisableIPv6(ns, link) }

// hostWireGuard starts WireGuard devices: kernel ones where the kernel has
// WireGuard, wireguard-go ones otherwise.
type hostWireGuard struct{ log *slog.Logger }

func (w hostWireGuard) Start(name, tunNS, sockNS string) (Device, error) {
	d, err := wg.Start(name, tunNS, sockNS, w.log.With("wg", name))
	if err != nil {
		return nil, err
	}
	return wgDevice{d}, nil
}

type wgDevice struct{ d *wg.Device }

func (d wgDevice) Configure(key [32]byte, port uint16, peers []Peer) error {
	c := wg.Config{PrivateKey: key, ListenPort: port}
	for _, p := range peers {
		c.Peers = append(c.Peers, wg.Peer{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: p.AllowedIPs, Keepalive: p.Keepalive})
	}
	return d.d.Configure(c)
}

func (d wgDevice) Close() error { return d.d.Close() }
