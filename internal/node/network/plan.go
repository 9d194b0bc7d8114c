// Package network is the node's network module: it computes what a
// private network resource (the `network` workload) is made of on a node
// (namespace, bridge, veths, WireGuard device, addresses, routes, peers,
// nftables rulesets) as plain values, and its Manager applies that through
// small interfaces implemented by internal/sys adapters. The client side
// (subnets, keys, peers, wg-quick configs) is internal/mesh.
package network

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/mesh"
)

var (
	// PublicRange holds the addresses of network resources towards the
	// node's routing namespace (the original's ndmz range).
	PublicRange = netip.MustParsePrefix("100.127.0.0/16")
	// PublicGateway is the node side of every resource's public link.
	PublicGateway = netip.MustParseAddr("100.127.0.1")
)

// MinListenPort is the lowest WireGuard port a network may take.
const MinListenPort = 1024

// PublicIface is the name of a resource's link towards the node.
const PublicIface = "public"

// Names are the names of a resource's kernel objects. Names of links in
// the node's namespace (and of the UAPI socket, which is host-wide) carry
// the node prefix through a hash so that several nodes share one host and
// stay within the 15 characters of a link name.
type Names struct {
	NS         string // the resource's namespace
	Bridge     string // bridge in the node namespace (VM taps join it)
	BridgeVeth string // node-namespace end of the veth on the bridge
	NRVeth     string // resource end of that veth, holding the gateway
	WG         string // WireGuard TUN in the resource namespace; UAPI socket name
	PublicVeth string // node-namespace end of the public link
}

// NamesOf returns the names of network netID on a node with prefix.
func NamesOf(prefix, netID string) Names {
	sid := netID
	if prefix != "" {
		h := sha256.Sum256([]byte(prefix + ":" + netID))
		sid = strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:]))[:13]
	}
	return Names{
		NS:         prefix + "n-" + netID,
		Bridge:     "b-" + sid,
		BridgeVeth: "l-" + sid,
		NRVeth:     "n-" + netID,
		WG:         "w-" + sid,
		PublicVeth: "u-" + sid,
	}
}

// Peer is a WireGuard peer as applied.
type Peer struct {
	PublicKey  [32]byte
	Endpoint   netip.AddrPort
	AllowedIPs []netip.Prefix
	Keepalive  int
}

// Route is a route inside a namespace.
type Route struct {
	Dst netip.Prefix
	Dev string
	Via netip.Addr
}

func (r Route) String() string {
	s := r.Dst.String() + " dev " + r.Dev
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	return s
}

// Resource is the desired state of one network resource on a node.
type Resource struct {
	NetID      string
	Names      Names
	Range      netip.Prefix // the user's network, /16
	Gateway    netip.Prefix // .1 of the subnet, on NRVeth
	WGAddr     netip.Prefix // 100.64.a.b/16 on WG
	PrivateKey [32]byte
	ListenPort uint16
	Peers      []Peer
	Routes     []Route // in the resource namespace
	// Public is the resource's address towards the node's routing
	// namespace; invalid when the node has no uplink namespace.
	Public  netip.Addr
	Ruleset string // nftables ruleset of the resource namespace
}

func prefixOf(n gridtypes.IPNet) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(n.String())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %s", n)
	}
	return p.Masked(), nil
}

// Plan computes the resource of network n (id netID) on a node with
// prefix; public is its address towards the node (invalid: no uplink).
// Bad keys, endpoints or addresses give an error naming the field.
func Plan(prefix, netID string, n *gridtypes.Network, public netip.Addr) (Resource, error) {
	if err := n.Valid(nil); err != nil {
		return Resource{}, err
	}
	rng, err := prefixOf(n.NetworkIPRange)
	if err != nil {
		return Resource{}, fmt.Errorf("ip_range: %w", err)
	}
	sub, err := prefixOf(n.Subnet)
	if err != nil {
		return Resource{}, fmt.Errorf("subnet: %w", err)
	}
	if !sub.Addr().Is4() {
		return Resource{}, fmt.Errorf("subnet: %s is not IPv4", sub)
	}
	if n.WGListenPort == 0 {
		return Resource{}, fmt.Errorf("wireguard_listen_port: must be set")
	}
	if n.WGListenPort < MinListenPort {
		return Resource{}, fmt.Errorf("wireguard_listen_port: %d is below %d: ports below it are the system's (the node's DHCP client listens on 68)", n.WGListenPort, MinListenPort)
	}
	key, err := mesh.ParseKey(n.WGPrivateKey)
	if err != nil {
		return Resource{}, fmt.Errorf("wireguard_private_key: %w", err)
	}
	names := NamesOf(prefix, netID)
	r := Resource{
		NetID: netID, Names: names, Range: rng,
		Gateway:    netip.PrefixFrom(sub.Addr().Next(), sub.Bits()),
		WGAddr:     mesh.WGAddress(sub),
		PrivateKey: key, ListenPort: n.WGListenPort, Public: public,
	}
	r.Routes = append(r.Routes, Route{Dst: rng, Dev: names.WG})
	seen := map[netip.Prefix]bool{rng: true}
	for i, p := range n.Peers {
		var peer Peer
		if peer.PublicKey, err = mesh.ParseKey(p.WGPublicKey); err != nil {
			return Resource{}, fmt.Errorf("peers[%d].wireguard_public_key: %w", i, err)
		}
		if peer.PublicKey == mesh.PublicOf(key) {
			return Resource{}, fmt.Errorf("peers[%d]: is this resource itself", i)
		}
		if p.Endpoint != "" {
			ap, err := netip.ParseAddrPort(p.Endpoint)
			if err != nil || ap.Port() == 0 || ap.Addr().IsUnspecified() {
				return Resource{}, fmt.Errorf("peers[%d].endpoint: %q is not ip:port", i, p.Endpoint)
			}
			peer.Endpoint = ap
			peer.Keepalive = 20
		}
		for j, a := range p.AllowedIPs {
			ap, err := prefixOf(a)
			if err != nil {
				return Resource{}, fmt.Errorf("peers[%d].allowed_ips[%d]: %w", i, j, err)
			}
			if ap.Bits() >= sub.Bits() && sub.Contains(ap.Addr()) {
				return Resource{}, fmt.Errorf("peers[%d].allowed_ips[%d]: %s is inside this resource's subnet %s", i, j, ap, sub)
			}
			peer.AllowedIPs = append(peer.AllowedIPs, ap)
			if !seen[ap] && !rng.Contains(ap.Addr()) && !mesh.WGRange.Contains(ap.Addr()) {
				seen[ap] = true
				r.Routes = append(r.Routes, Route{Dst: ap, Dev: names.WG})
			}
		}
		r.Peers = append(r.Peers, peer)
	}
	if public.IsValid() {
		r.Routes = append(r.Routes,
			Route{Dst: netip.PrefixFrom(PublicGateway, 32), Dev: PublicIface},
			Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: PublicIface, Via: PublicGateway})
	}
	r.Ruleset = ResourceRuleset(public.IsValid())
	return r, nil
}

// ResourceRuleset is the firewall of a resource namespace: new traffic
// from outside (the public link) is dropped, answers pass, outbound SMTP
// is refused, and traffic leaving through the public link is masqueraded.
func ResourceRuleset(public bool) string {
	var b strings.Builder
	b.WriteString(`table inet zos
delete table inet zos
table inet zos {
	chain input {
		type filter hook input priority filter; policy accept;
		ct state established,related accept
		iifname "public" drop
	}
	chain forward {
		type filter hook forward priority filter; policy accept;
		ct state established,related accept
		iifname "public" drop
		tcp dport { 25, 465, 587 } reject with tcp reset
	}
`)
	if public {
		b.WriteString(`	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "public" masquerade fully-random
	}
`)
	}
	b.WriteString("}\n")
	return b.String()
}

// NodeRuleset is the forwarding firewall and NAT of the node's routing
// namespace (with an uplink): resources reach the uplink masqueraded,
// cannot reach each other, and are not reachable from outside unless
// answering. What tenants send through the node (see TenantForward)
// reaches the internet only: never the ranges in NonPublic, nor router
// (the farm's router, the uplink's gateway, when valid), which stays a
// next hop only. Frames a bridge passes between a resource and its VMs
// (they cross this hook when the kernel has br_netfilter) are the
// tenant's own link and pass.
func NodeRuleset(router netip.Addr) string {
	blocked := make([]string, 0, len(NonPublic)+1)
	for _, p := range NonPublic {
		blocked = append(blocked, p.String())
	}
	if router.Is4() && !slices.ContainsFunc(NonPublic, func(p netip.Prefix) bool { return p.Contains(router) }) {
		blocked = append(blocked, router.String())
	}
	return fmt.Sprintf(`table inet zos-nr
delete table inet zos-nr
table inet zos-nr {
	chain forward {
		type filter hook forward priority filter; policy accept;
		# bridged between a resource and its VMs (br_netfilter)
		iifname "b-*" oifname "b-*" accept
		ip saddr 100.127.0.0/16 ip daddr 100.127.0.0/16 drop
		iifname %[1]s jump tenant
		ct state established,related accept
		ip daddr 100.127.0.0/16 drop
		ip saddr 100.127.0.0/16 tcp dport { 25, 465, 587 } reject with tcp reset
	}
	# from tenant links: to the internet only; IPv6 from public and
	# planetary taps only (each filtered by its own table)
	chain tenant {
		iifname != { "p-*", "y-*" } meta nfproto ipv6 drop
		ct state established,related accept
		# a VM's traffic goes through its resource, never routed by the bridge
		iifname { "b-*", "l-*", "t-*" } drop
		ip daddr { %[2]s } drop
		ip6 daddr { %[3]s } drop
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 100.127.0.0/16 ip daddr != 100.127.0.0/16 masquerade fully-random
	}
}
`, tenantSet(), strings.Join(blocked, ", "), prefixList(NonPublic6))
}

// TenantLinks are the name prefixes of the links the node makes in its
// namespace for tenants: resources' bridges (b-) and the veths on them
// (l-), resources' public links (u-), VMs' private taps (t-, the
// zmachine manager's names), public taps (p-, PublicTap) and planetary
// taps (y-, PlanetaryTap). The node's firewall treats whatever arrives on
// them as a tenant's.
var TenantLinks = []string{"b-", "l-", "u-", "t-", "p-", "y-"}

// IsTenantLink reports whether name is a tenant link (see TenantLinks).
func IsTenantLink(name string) bool {
	for _, p := range TenantLinks {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return true
		}
	}
	return false
}

// prefixList is ps as an nft set body.
func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// tenantSet is TenantLinks as an nft set of interface name wildcards.
func tenantSet() string {
	s := make([]string, len(TenantLinks))
	for i, p := range TenantLinks {
		s[i] = `"` + p + `*"`
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// NonPublic are the IPv4 ranges tenants may not reach through the node:
// "this network", private (RFC 1918), shared (RFC 6598: it holds the
// resources' own links), loopback, link-local (cloud metadata services),
// IETF assignments, benchmarking, multicast and reserved. What the
// internet cannot reach, a tenant cannot reach from the node either; the
// LAN of most farms lies in them.
var NonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// InputRuleset is the filter, in the node namespace, of what tenants send
// to the node itself (nftables table table): from tenant links nothing
// over IPv6 (router advertisements, redirects and neighbour discovery
// included) but neighbour discovery on public and planetary taps (a VM
// resolves its router, fe80::1), nothing else from planetary taps, and
// otherwise only answers to the node's own connections and new TCP
// connections to ports, the services meant for tenants.
func InputRuleset(table string, ports []uint16) string {
	allow := ""
	if len(ports) > 0 {
		ps := make([]string, len(ports))
		for i, p := range ports {
			ps[i] = strconv.Itoa(int(p))
		}
		allow = "\n\t\ttcp dport { " + strings.Join(ps, ", ") + " } accept"
	}
	return fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname %[2]s jump tenant
	}
	# from tenant links: no IPv6 but neighbour discovery on public and
	# planetary taps (the node is their VM's router; never router
	# advertisements), nothing else from planetary taps (the node's
	# services are not reachable over the overlay's link), no new
	# connection but to the services meant for tenants
	chain tenant {
		iifname { "p-*", "y-*" } icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept
		iifname "y-*" drop
		iifname != "p-*" meta nfproto ipv6 drop
		ct state established,related accept%[3]s
		drop
	}
}
`, table, tenantSet(), allow)
}
