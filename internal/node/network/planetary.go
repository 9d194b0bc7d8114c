package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/sys/nft"
)

// VMs on the planetary overlay (yggdrasil, 200::/7). The node's overlay
// process owns a /64 of 300::/8 (its TUN, ygg0, routes 200::/7 in the node
// namespace). A VM with `planetary: true` gets a routed tap y-<unique> in
// the node namespace, like a public tap: its overlay address (DeriveIPv6 of
// the node's /64 and the tap's MAC, deterministic per workload) is routed
// to the tap as a /128, and the node is its router at fe80::1 there. The
// VM routes 200::/7 via fe80::1.
//
// Filter (PlanetaryRuleset, one table per tap, and the node's tables):
// from the tap only IPv6 from the VM's own overlay address to 200::/7 is
// forwarded (no spoofing, no other destination: the overlay only); to the
// node itself only neighbour discovery (the node's services are not
// reachable over this link). Towards the VM everything the overlay sends
// passes, as in the original: overlay addresses are public on the overlay,
// what the VM listens on is reachable.

// Overlay is the yggdrasil address space (200::/7): node addresses in
// 200::/8, their /64s in 300::/8.
var Overlay = netip.MustParsePrefix("200::/7")

// PlanetaryTapPrefix starts the name of every planetary tap.
const PlanetaryTapPrefix = "y-"

// PlanetaryTap is the name of a zmachine workload's planetary tap.
func PlanetaryTap(wl gridtypes.WorkloadID) string { return PlanetaryTapPrefix + wl.Unique("ygg") }

// PlanetaryIP is the overlay address of the VM whose planetary tap is tap
// in the node's overlay /64 subnet: subnet with the EUI-64 of the tap's
// MAC (PublicMAC), deterministic per workload. The subnet must be a /64
// in 300::/8.
func PlanetaryIP(subnet netip.Prefix, tap string) (netip.Addr, error) {
	if subnet.Bits() != 64 || !netip.MustParsePrefix("300::/8").Contains(subnet.Addr()) {
		return netip.Addr{}, fmt.Errorf("planetary subnet %s is not a /64 of 300::/8", subnet)
	}
	return DeriveIPv6(subnet, PublicMAC(tap))
}

// PlanetaryRuleset is the filter of planetary tap tap whose VM has overlay
// address ip: forwarded only from ip to Overlay, nothing of IPv4, and
// towards the VM only from Overlay (its link is the overlay's); to the
// node only neighbour discovery from ip, a link-local source or "::"
// (router advertisements and redirects from the VM dropped).
func PlanetaryRuleset(tap string, ip netip.Addr) string {
	t := filterTable(tap)
	return fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "%[2]s" meta nfproto ipv4 drop
		iifname "%[2]s" ip6 saddr != %[3]s drop
		iifname "%[2]s" ip6 daddr != %[4]s drop
		oifname "%[2]s" ip6 saddr != %[4]s drop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "%[2]s" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 saddr { %[3]s, fe80::/10, :: } ip6 hoplimit 255 accept
		iifname "%[2]s" drop
	}
}
`, t, tap, ip, Overlay)
}

// AttachPlanetary makes tap the planetary link of a VM with overlay
// address ip (see PlanetaryIP): a routed tap in the node namespace with
// the node's fe80::1 on it, ip routed to it, and its filter
// (PlanetaryRuleset). It is idempotent (a node restart attaches again).
// It needs a node that owns its namespace (the overlay's TUN lives there).
func (m *Manager) AttachPlanetary(tap string, ip netip.Addr) error {
	if !m.cfg.Uplink {
		return errors.New("this node has no network namespace of its own (hosted in the host's namespace): VMs cannot join the planetary network here")
	}
	if !strings.HasPrefix(tap, PlanetaryTapPrefix) || !IsTenantLink(tap) {
		return fmt.Errorf("tap %q: a planetary tap must be named %s<id>", tap, PlanetaryTapPrefix)
	}
	if !ip.Is6() || !Overlay.Contains(ip) {
		return fmt.Errorf("tap %s: %s is not a planetary (200::/7) address", tap, ip)
	}
	ns := m.cfg.NodeNS
	// the filter is in place before the tap exists
	if err := m.sys.Firewall.Apply(ns, PlanetaryRuleset(tap, ip)); err != nil {
		return fmt.Errorf("installing the filter of planetary tap %s: %w", tap, err)
	}
	if err := m.sys.Links.AddTap(ns, tap, ""); err != nil {
		return err
	}
	for _, kv := range [][2]string{
		{"net/ipv6/conf/all/forwarding", "1"},
		{"net/ipv6/conf/" + tap + "/accept_dad", "0"},
		{"net/ipv6/conf/" + tap + "/disable_ipv6", "0"},
	} {
		if err := m.sys.Sysctls.Set(ns, kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := m.sys.Ifaces.AddAddr(ns, tap, netip.PrefixFrom(RouterLinkLocal, 64)); err != nil {
		return err
	}
	return m.sys.Routes.Add(ns, Route{Dst: netip.PrefixFrom(ip, 128), Dev: tap})
}

// DetachPlanetary removes a VM's planetary tap (with its route) and its
// filter; missing ones are no error.
func (m *Manager) DetachPlanetary(tap string) error {
	if !strings.HasPrefix(tap, PlanetaryTapPrefix) {
		return fmt.Errorf("tap %q: not a planetary tap", tap)
	}
	return errors.Join(m.sys.Links.Delete(m.cfg.NodeNS, tap), m.sys.Firewall.Apply(m.cfg.NodeNS, nft.Drop("inet", filterTable(tap))))
}
