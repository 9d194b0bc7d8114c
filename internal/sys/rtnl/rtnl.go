// Package rtnl applies links, addresses and routes inside named network
// namespaces over netlink. The network manager uses it; every function
// takes the namespace explicitly ("" is the caller's) and never changes the
// calling thread's namespace.
package rtnl

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/sys/netns"
)

// Route is a route in a namespace: to Dst through Dev, via Via when set.
type Route struct {
	Dst netip.Prefix
	Dev string
	Via netip.Addr
}

func handle(ns string) (*netlink.Handle, error) {
	h, err := netns.Open(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	// Routing only: a kernel without xfrm or netfilter netlink (the boot
	// image loads few modules) refuses a handle asking for every family.
	nh, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in namespace %q: %w", ns, err)
	}
	return nh, nil
}

func link(h *netlink.Handle, ns, name string) (netlink.Link, error) {
	l, err := h.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("finding link %s in namespace %q: %w", name, ns, err)
	}
	return l, nil
}

// onLink runs f with a handle on ns and link name there; a missing link is
// an error.
func onLink(ns, name string, f func(*netlink.Handle, netlink.Link) error) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := link(h, ns, name)
	if err != nil {
		return err
	}
	return f(h, l)
}

// LinkExists reports whether link name exists in ns.
func LinkExists(ns, name string) bool {
	h, err := handle(ns)
	if err != nil {
		return false
	}
	defer h.Close()
	_, err = h.LinkByName(name)
	return err == nil
}

// Option changes how a link is made.
type Option func(*options)

type options struct {
	noIPv6 bool
}

func collect(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// NoIPv6 makes the link without IPv6 (see DisableIPv6), set before it
// first comes up so that it never has a link-local address. For a veth it
// concerns the end made in ns, not the peer.
func NoIPv6() Option { return func(o *options) { o.noIPv6 = true } }

// ipv6Off are the sysctls of a link without IPv6, in the order written.
var ipv6Off = [][2]string{
	{"addr_gen_mode", "1"}, // no link-local address, even if IPv6 is enabled again
	{"accept_ra", "0"},
	{"accept_redirects", "0"},
	{"autoconf", "0"},
	{"disable_ipv6", "1"},
}

// DisableIPv6 turns IPv6 off on link name of ns through its sysctls under
// /proc/sys/net/ipv6/conf/<name>: no address, no router advertisement or
// redirect accepted, no packet received. name may be "all" or "default".
// A kernel without IPv6 has nothing to turn off.
func DisableIPv6(ns, name string) error {
	return netns.Do(ns, func() error {
		if _, err := os.Stat("/proc/sys/net/ipv6/conf"); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		dir := filepath.Join("/proc/sys/net/ipv6/conf", name)
		for _, kv := range ipv6Off {
			if err := os.WriteFile(filepath.Join(dir, kv[0]), []byte(kv[1]), 0o644); err != nil {
				return fmt.Errorf("turning IPv6 off on %s in namespace %q: %w", name, ns, err)
			}
		}
		return nil
	})
}

func (o options) apply(ns, name string) error {
	if o.noIPv6 {
		return DisableIPv6(ns, name)
	}
	return nil
}

// AddBridge creates bridge name in ns and sets it up.
func AddBridge(ns, name string, opts ...Option) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("creating bridge %s in namespace %q: %w", name, ns, err)
	}
	if err := collect(opts).apply(ns, name); err != nil {
		return err
	}
	if err := h.LinkSetUp(br); err != nil {
		return fmt.Errorf("setting bridge %s up: %w", name, err)
	}
	return nil
}

// AddVeth creates a veth pair: name in ns, peer in peerNS, both up. When
// master is set, name is enslaved to that bridge.
func AddVeth(ns, name, master, peerNS, peer string, opts ...Option) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	pns, err := netns.Open(peerNS)
	if err != nil {
		return err
	}
	defer pns.Close()
	attrs := netlink.LinkAttrs{Name: name}
	if master != "" {
		br, err := link(h, ns, master)
		if err != nil {
			return err
		}
		attrs.MasterIndex = br.Attrs().Index
	}
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: peer, PeerNamespace: netlink.NsFd(int(pns))}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("creating veth %s (peer %s in namespace %q) in namespace %q: %w", name, peer, peerNS, ns, err)
	}
	if err := collect(opts).apply(ns, name); err != nil {
		return err
	}
	if err := h.LinkSetUp(v); err != nil {
		return fmt.Errorf("setting %s up: %w", name, err)
	}
	return SetUp(peerNS, peer)
}

// SetUp sets link name in ns up.
func SetUp(ns, name string) error {
	return onLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("setting %s up in namespace %q: %w", name, ns, err)
		}
		return nil
	})
}

// AddAddr adds address p to link name in ns; an existing one is kept.
func AddAddr(ns, name string, p netip.Prefix) error {
	return onLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		a := &netlink.Addr{IPNet: ipnet(p)}
		if err := h.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("adding %s to %s in namespace %q: %w", p, name, ns, err)
		}
		return nil
	})
}

// Addrs returns the usable IPv4 and IPv6 addresses of every link in ns
// but lo: link-local IPv6 ones are left out, and so are IPv6 addresses
// still in duplicate address detection (tentative: the kernel neither
// sends from them nor takes packets for them) or that failed it.
func Addrs(ns string) (map[string][]netip.Prefix, error) {
	out := map[string][]netip.Prefix{}
	err := eachLink(ns, func(h *netlink.Handle, l netlink.Link) error {
		if l.Attrs().Name == "lo" {
			return nil
		}
		addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, unix.AF_UNSPEC) })
		if err != nil {
			return fmt.Errorf("listing addresses of %s: %w", l.Attrs().Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if !ok || ip.Is6() && ip.Unmap().IsLinkLocalUnicast() || a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
				continue
			}
			ones, _ := a.Mask.Size()
			out[l.Attrs().Name] = append(out[l.Attrs().Name], netip.PrefixFrom(ip.Unmap(), ones))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// eachLink runs f with a handle on ns for every link there, until f fails.
func eachLink(ns string, f func(*netlink.Handle, netlink.Link) error) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := dump(h.LinkList)
	if err != nil {
		return fmt.Errorf("listing links in namespace %q: %w", ns, err)
	}
	for _, l := range links {
		if err := f(h, l); err != nil {
			return err
		}
	}
	return nil
}

// AddRoute adds (or replaces) r in ns.
func AddRoute(ns string, r Route) error {
	return onLink(ns, r.Dev, func(h *netlink.Handle, l netlink.Link) error {
		nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet(r.Dst), Scope: netlink.SCOPE_LINK}
		if r.Via.IsValid() {
			nr.Gw = net.IP(r.Via.AsSlice())
			nr.Scope = netlink.SCOPE_UNIVERSE
			nr.Flags = int(netlink.FLAG_ONLINK)
		}
		if err := h.RouteReplace(nr); err != nil {
			return fmt.Errorf("adding route %s dev %s via %s in namespace %q: %w", r.Dst, r.Dev, r.Via, ns, err)
		}
		return nil
	})
}

// HasRoute reports whether ns has a route to exactly dst.
func HasRoute(ns string, dst netip.Prefix) bool {
	h, err := handle(ns)
	if err != nil {
		return false
	}
	defer h.Close()
	routes, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(unix.AF_INET, &netlink.Route{Dst: ipnet(dst)}, netlink.RT_FILTER_DST)
	})
	return err == nil && len(routes) > 0
}

// DeleteLink removes link name from ns; a missing link is not an error.
func DeleteLink(ns, name string) error {
	if ns != "" && !netns.Exists(ns) {
		return nil
	}
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("finding link %s in namespace %q: %w", name, ns, err)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		// ENODEV: it went meanwhile (a veth whose peer's namespace died).
		return fmt.Errorf("deleting link %s in namespace %q: %w", name, ns, err)
	}
	return nil
}

func ipnet(p netip.Prefix) *net.IPNet {
	if p.Addr().Is4() {
		return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 32)}
	}
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), 128)}
}

// Links returns the names of the links of ns starting with prefix.
func Links(ns, prefix string) ([]string, error) {
	var out []string
	err := eachLink(ns, func(_ *netlink.Handle, l netlink.Link) error {
		if n := l.Attrs().Name; strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
		return nil
	})
	return out, err
}

// DelRoute removes the route to r.Dst through r.Dev from ns; a missing
// route is not an error.
func DelRoute(ns string, r Route) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(r.Dev)
	if err != nil {
		return nil // the link, and so the route, is gone
	}
	nr := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipnet(r.Dst)}
	if err := h.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("deleting route %s dev %s in namespace %q: %w", r.Dst, r.Dev, ns, err)
	}
	return nil
}

// AddTap makes name a persistent tap in ns, enslaved to bridge master
// when set, and up. An existing tap (a VM that outlived the node process,
// its bridge made again) is enslaved again, not recreated; options apply
// to it again.
func AddTap(ns, name, master string, opts ...Option) error {
	h, err := handle(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	var br netlink.Link
	if master != "" {
		if br, err = link(h, ns, master); err != nil {
			return err
		}
	}
	l, err := h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("finding link %s in namespace %q: %w", name, ns, err)
		}
		// The tun device is created in the namespace of the calling thread.
		tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name}, Mode: netlink.TUNTAP_MODE_TAP,
			Flags: netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR}
		if err := netns.Do(ns, func() error { return netlink.LinkAdd(tap) }); err != nil {
			return fmt.Errorf("creating tap %s in namespace %q: %w", name, ns, err)
		}
		if l, err = link(h, ns, name); err != nil {
			return err
		}
	}
	if err := collect(opts).apply(ns, name); err != nil {
		return err
	}
	if br != nil && l.Attrs().MasterIndex != br.Attrs().Index {
		if err := h.LinkSetMasterByIndex(l, br.Attrs().Index); err != nil {
			return fmt.Errorf("enslaving %s to %s in namespace %q: %w", name, master, ns, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("setting %s up in namespace %q: %w", name, ns, err)
	}
	return nil
}

// DefaultRouteDev is the link of the IPv4 default route in ns ("" when
// there is none).
func DefaultRouteDev(ns string) (string, error) {
	dev, _, err := DefaultRoute(ns)
	return dev, err
}

// DefaultRoute is the link and the gateway of the IPv4 default route in
// ns ("" and an invalid address when there is none; no gateway for a
// route on a link).
func DefaultRoute(ns string) (string, netip.Addr, error) {
	h, err := handle(ns)
	if err != nil {
		return "", netip.Addr{}, err
	}
	defer h.Close()
	routes, err := dump(func() ([]netlink.Route, error) { return h.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return "", netip.Addr{}, fmt.Errorf("listing routes in namespace %q: %w", ns, err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() && r.Dst.Mask != nil && net.IP(r.Dst.Mask).IsUnspecified() {
			l, err := h.LinkByIndex(r.LinkIndex)
			if err != nil {
				return "", netip.Addr{}, fmt.Errorf("default route link in namespace %q: %w", ns, err)
			}
			gw, _ := netip.AddrFromSlice(r.Gw.To4())
			return l.Attrs().Name, gw, nil
		}
	}
	return "", netip.Addr{}, nil
}

// HardwareAddr is the MAC address of link name in ns.
func HardwareAddr(ns, name string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := onLink(ns, name, func(_ *netlink.Handle, l netlink.Link) error {
		mac = l.Attrs().HardwareAddr
		return nil
	})
	return mac, err
}

// AddProxyNeighbor makes ns answer neighbour solicitations for ip on link
// name (`ip -6 neigh add proxy ip dev name`; the link needs proxy_ndp).
// An existing entry is no error.
func AddProxyNeighbor(ns, name string, ip netip.Addr) error {
	return onLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET6, Flags: netlink.NTF_PROXY, IP: net.IP(ip.AsSlice())}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("adding proxy neighbour %s on %s in namespace %q: %w", ip, name, ns, err)
		}
		return nil
	})
}

// DeleteProxyNeighbor removes the proxy entry of ip on link name; a
// missing entry, link or namespace is no error.
func DeleteProxyNeighbor(ns, name string, ip netip.Addr) error {
	if ns != "" && !netns.Exists(ns) || !LinkExists(ns, name) {
		return nil
	}
	return onLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: unix.AF_INET6, Flags: netlink.NTF_PROXY, IP: net.IP(ip.AsSlice())}
		if err := h.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing proxy neighbour %s on %s in namespace %q: %w", ip, name, ns, err)
		}
		return nil
	})
}

// FlushProxyNeighbors removes every IPv6 proxy entry of link name in ns.
func FlushProxyNeighbors(ns, name string) error {
	return onLink(ns, name, func(h *netlink.Handle, l netlink.Link) error {
		entries, err := dump(func() ([]netlink.Neigh, error) { return h.NeighProxyList(l.Attrs().Index, unix.AF_INET6) })
		if err != nil {
			return fmt.Errorf("listing proxy neighbours of %s in namespace %q: %w", name, ns, err)
		}
		for _, n := range entries {
			if err := h.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("removing proxy neighbour %s on %s in namespace %q: %w", n.IP, name, ns, err)
			}
		}
		return nil
	})
}

// ProxyNeighbors lists the IPv6 proxy entries of ns as "ip dev link".
func ProxyNeighbors(ns string) ([]string, error) {
	h, err := handle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	names := linkNames(h)
	entries, err := dump(func() ([]netlink.Neigh, error) { return h.NeighProxyList(0, unix.AF_INET6) })
	if err != nil {
		return nil, fmt.Errorf("listing proxy neighbours in namespace %q: %w", ns, err)
	}
	var out []string
	for _, n := range entries {
		out = append(out, fmt.Sprintf("%s dev %s", n.IP, names[n.LinkIndex]))
	}
	return out, nil
}
