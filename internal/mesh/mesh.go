// Package mesh plans a user network across nodes as the client sees it:
// subnets inside the network's range, WireGuard keys and ports, the peers
// of every node's network workload and the wg-quick configuration of an
// access peer. It is pure (no kernel calls); zosctl plans with it and the
// node's network module takes its WireGuard addressing from it.
package mesh

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/zos-go/zos/internal/gridtypes"
)

// Node is one node of a user network, as the client plans it.
type Node struct {
	NodeID     uint32
	Subnet     netip.Prefix
	PrivateKey string // base64
	Port       uint16
	// Endpoint is the node's public address; invalid for a hidden node,
	// which can only reach the others through the access node.
	Endpoint netip.Addr
}

// AccessPeer is a machine of the user (a laptop) joined through the
// access node.
type AccessPeer struct {
	Subnet    netip.Prefix
	PublicKey string
}

// Mesh is a user network across nodes.
type Mesh struct {
	Range  netip.Prefix
	Nodes  []Node
	Access uint32 // the node hidden nodes and access peers connect to; 0 if none
	Users  []AccessPeer
}

// WGRange holds the WireGuard addresses of a network.
var WGRange = netip.MustParsePrefix("100.64.0.0/16")

// WGAddress returns the WireGuard address of subnet: 100.64.<b1>.<b2>/16
// (10.20.3.0/24 -> 100.64.20.3).
func WGAddress(subnet netip.Prefix) netip.Prefix {
	b := subnet.Addr().As4()
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, b[1], b[2]}), 16)
}

func wgHost(subnet netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(WGAddress(subnet).Addr(), 32)
}

func toIPNet(p netip.Prefix) gridtypes.IPNet {
	return gridtypes.MustParseIPNet(p.String())
}

// Check verifies the mesh: subnets inside the range and distinct, hidden
// nodes only with a public access node.
func (m *Mesh) Check() error {
	if !m.Range.IsValid() || m.Range.Bits() != 16 || !m.Range.Addr().Is4() {
		return fmt.Errorf("ip range %s must be an IPv4 /16", m.Range)
	}
	seen := map[netip.Prefix]string{}
	add := func(p netip.Prefix, who string) error {
		if p.Bits() != 24 || !m.Range.Contains(p.Addr()) {
			return fmt.Errorf("%s: subnet %s is not a /24 inside %s", who, p, m.Range)
		}
		if o, ok := seen[p.Masked()]; ok {
			return fmt.Errorf("%s: subnet %s is already used by %s", who, p, o)
		}
		seen[p.Masked()] = who
		return nil
	}
	hidden := false
	accessOK := false
	for _, n := range m.Nodes {
		if err := add(n.Subnet, fmt.Sprintf("node %d", n.NodeID)); err != nil {
			return err
		}
		if !n.Endpoint.IsValid() {
			hidden = true
		}
		if n.NodeID == m.Access && n.Endpoint.IsValid() {
			accessOK = true
		}
	}
	for i, u := range m.Users {
		if err := add(u.Subnet, fmt.Sprintf("access peer %d", i)); err != nil {
			return err
		}
	}
	// A hidden node alone needs nobody: its VMs reach each other on its
	// bridge. With other nodes or access peers it is reached through the
	// access node.
	if ((hidden && len(m.Nodes) > 1) || len(m.Users) > 0) && !accessOK {
		return errors.New("hidden nodes and access peers need an access node with a public address among the network's nodes")
	}
	return nil
}

// NextSubnet returns the first /24 of the range (from x.x.2.0) that no
// node or access peer uses.
func (m *Mesh) NextSubnet() (netip.Prefix, error) {
	used := map[netip.Prefix]bool{}
	for _, n := range m.Nodes {
		used[n.Subnet.Masked()] = true
	}
	for _, u := range m.Users {
		used[u.Subnet.Masked()] = true
	}
	b := m.Range.Addr().As4()
	for x := 2; x < 255; x++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{b[0], b[1], byte(x), 0}), 24)
		if !used[p] {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 left in %s", m.Range)
}

// Resources returns the network workload data of every node, in the
// order of m.Nodes: public nodes peer with each other directly; hidden
// nodes have the access node as their only peer, through which they reach
// the whole range; the access node carries hidden nodes and access peers.
func (m *Mesh) Resources() ([]gridtypes.Network, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	pubs := make([]string, len(m.Nodes))
	for i, n := range m.Nodes {
		p, err := PublicKey(n.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", n.NodeID, err)
		}
		pubs[i] = p
	}
	// What only the access node reaches directly.
	var behindAccess []gridtypes.IPNet
	for _, n := range m.Nodes {
		if !n.Endpoint.IsValid() {
			behindAccess = append(behindAccess, toIPNet(n.Subnet), toIPNet(wgHost(n.Subnet)))
		}
	}
	for _, u := range m.Users {
		behindAccess = append(behindAccess, toIPNet(u.Subnet), toIPNet(wgHost(u.Subnet)))
	}
	out := make([]gridtypes.Network, len(m.Nodes))
	for i, n := range m.Nodes {
		r := gridtypes.Network{NetworkIPRange: toIPNet(m.Range), Subnet: toIPNet(n.Subnet), WGPrivateKey: n.PrivateKey, WGListenPort: n.Port, Peers: []gridtypes.Peer{}}
		for j, o := range m.Nodes {
			if j == i {
				continue
			}
			peer := gridtypes.Peer{Subnet: toIPNet(o.Subnet), WGPublicKey: pubs[j]}
			if o.Endpoint.IsValid() {
				peer.Endpoint = netip.AddrPortFrom(o.Endpoint, o.Port).String()
			}
			switch {
			case !n.Endpoint.IsValid(): // hidden: everything through the access node
				if o.NodeID != m.Access {
					continue
				}
				peer.AllowedIPs = []gridtypes.IPNet{toIPNet(m.Range), toIPNet(WGRange)}
			case !o.Endpoint.IsValid(): // a hidden node: only the access node peers with it
				if n.NodeID != m.Access {
					continue
				}
				peer.AllowedIPs = []gridtypes.IPNet{toIPNet(o.Subnet), toIPNet(wgHost(o.Subnet))}
			default:
				peer.AllowedIPs = []gridtypes.IPNet{toIPNet(o.Subnet), toIPNet(wgHost(o.Subnet))}
				if o.NodeID == m.Access {
					peer.AllowedIPs = append(peer.AllowedIPs, behindAccess...)
				}
			}
			r.Peers = append(r.Peers, peer)
		}
		if n.NodeID == m.Access {
			for _, u := range m.Users {
				r.Peers = append(r.Peers, gridtypes.Peer{Subnet: toIPNet(u.Subnet), WGPublicKey: u.PublicKey,
					AllowedIPs: []gridtypes.IPNet{toIPNet(u.Subnet), toIPNet(wgHost(u.Subnet))}})
			}
		}
		out[i] = r
	}
	return out, nil
}

// WGQuick returns the wg-quick configuration of an access peer with
// private key priv and subnet, joined through the access node.
func (m *Mesh) WGQuick(priv string, subnet netip.Prefix) (string, error) {
	var access *Node
	for i := range m.Nodes {
		if m.Nodes[i].NodeID == m.Access {
			access = &m.Nodes[i]
		}
	}
	if access == nil || !access.Endpoint.IsValid() {
		return "", errors.New("the network has no public access node")
	}
	pub, err := PublicKey(access.PrivateKey)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[Interface]\nAddress = %s\nPrivateKey = %s\n\n", WGAddress(subnet), priv)
	fmt.Fprintf(&b, "[Peer]\nPublicKey = %s\nAllowedIPs = %s, %s\nPersistentKeepalive = 25\nEndpoint = %s\n",
		pub, m.Range, WGRange, netip.AddrPortFrom(access.Endpoint, access.Port))
	return b.String(), nil
}

// FreePort returns a port in [lo, hi] not in taken, starting at a
// position chosen by seed so that nodes do not all pick the same.
func FreePort(taken []uint16, seed uint32, lo, hi uint16) (uint16, error) {
	t := map[uint16]bool{}
	for _, p := range taken {
		t[p] = true
	}
	n := uint32(hi-lo) + 1
	for i := range n {
		p := lo + uint16((seed+i)%n)
		if !t[p] {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port in %d-%d", lo, hi)
}

// SortNodes orders the mesh's nodes by id.
func (m *Mesh) SortNodes() {
	sort.Slice(m.Nodes, func(i, j int) bool { return m.Nodes[i].NodeID < m.Nodes[j].NodeID })
}
