package rtnl

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Listed is a route as the kernel lists it, in any table.
type Listed struct {
	Table    int
	Type     int          // unix.RTN_* (unicast, local, multicast, ...)
	Protocol int          // unix.RTPROT_* (kernel, boot, ra, ...)
	Dst      netip.Prefix // ::/0 or 0.0.0.0/0 for a default route
	Dev      string       // "" when the route has no link
	Via      netip.Addr   // invalid without a gateway
}

func (r Listed) String() string {
	s := fmt.Sprintf("%s table %d type %d proto %d", r.Dst, r.Table, r.Type, r.Protocol)
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	return s
}

// Routes lists the routes of family (unix.AF_INET or unix.AF_INET6) in
// every table of ns: what `ip -6 route show table all` shows.
func Routes(ns string, family int) ([]Listed, error) {
	h, err := handle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	routes, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes in namespace %q: %w", ns, err)
	}
	names := linkNames(h)
	out := make([]Listed, 0, len(routes))
	for _, r := range routes {
		l := Listed{Table: r.Table, Type: r.Type, Protocol: int(r.Protocol), Dev: names[r.LinkIndex]}
		if r.Dst != nil {
			a, _ := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			l.Dst = netip.PrefixFrom(a.Unmap(), ones)
		} else if family == unix.AF_INET6 {
			l.Dst = netip.MustParsePrefix("::/0")
		} else {
			l.Dst = netip.MustParsePrefix("0.0.0.0/0")
		}
		if r.Gw != nil {
			l.Via, _ = netip.AddrFromSlice(r.Gw)
			l.Via = l.Via.Unmap()
		}
		out = append(out, l)
	}
	return out, nil
}

// Neighbor is an entry of a neighbour table (ARP or NDP).
type Neighbor struct {
	Dev   string
	IP    netip.Addr
	MAC   net.HardwareAddr // nil while unresolved
	State int              // netlink.NUD_* bits
}

func (n Neighbor) String() string {
	return fmt.Sprintf("%s dev %s lladdr %s state %#x", n.IP, n.Dev, n.MAC, n.State)
}

// Neighbors lists the IPv4 and IPv6 neighbour entries of every link of ns.
func Neighbors(ns string) ([]Neighbor, error) {
	h, err := handle(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	names := linkNames(h)
	var out []Neighbor
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		entries, err := dump(func() ([]netlink.Neigh, error) { return h.NeighList(0, fam) })
		if err != nil {
			return nil, fmt.Errorf("listing neighbours in namespace %q: %w", ns, err)
		}
		for _, n := range entries {
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			out = append(out, Neighbor{Dev: names[n.LinkIndex], IP: ip.Unmap(), MAC: n.HardwareAddr, State: n.State})
		}
	}
	return out, nil
}

// linkNames maps the link indexes of h's namespace to their names.
func linkNames(h *netlink.Handle) map[int]string {
	names := map[int]string{}
	links, _ := dump(h.LinkList)
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	return names
}
