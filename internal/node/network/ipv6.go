package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// IPv6 on the public side. A node with an uplink of its own takes its
// IPv6 by SLAAC (accept_ra 2 on the uplink: router advertisements are
// accepted though the namespace forwards) or, from the farm's public
// config, a static /64 address and gateway (Config.Static6, Gateway6).
// A VM's public IPv6 is derived from that /64 (DeriveIPv6), routed to its
// public tap and proxied on the uplink by NDP.

// ErrNoIPv6 says the node has no public IPv6 (no router advertisement on
// its uplink and none in the farm's public config).
var ErrNoIPv6 = errors.New("the node has no public IPv6: no router advertisement with a /64 prefix on its uplink and no ipv6 in the farm's public config")

// RouterLinkLocal is the node's address on every public tap that carries
// IPv6: the VM's IPv6 default gateway (fe80::1 dev eth1).
var RouterLinkLocal = netip.MustParseAddr("fe80::1")

// proxy6 is the public IPv6 of a VM's tap, proxied on uplink.
type proxy6 struct {
	uplink string
	ip     netip.Addr
}

// startIPv6 sets the uplink of the node namespace for IPv6: router
// advertisements accepted while forwarding (accept_ra 2), addresses from
// them (autoconf), NDP proxying for the VMs' addresses, forwarding on;
// leftover proxy entries removed; then the farm's static address and
// route if configured.
func (m *Manager) startIPv6(uplink string) error {
	if uplink == "" {
		return errors.New("the node namespace has no default route")
	}
	ns := m.cfg.NodeNS
	for _, kv := range [][2]string{
		{"net/ipv6/conf/" + uplink + "/accept_ra", "2"},
		{"net/ipv6/conf/" + uplink + "/autoconf", "1"},
		{"net/ipv6/conf/" + uplink + "/proxy_ndp", "1"},
		{"net/ipv6/conf/all/forwarding", "1"},
	} {
		if err := m.sys.Sysctls.Set(ns, kv[0], kv[1]); err != nil {
			return err
		}
	}
	// In a namespace of its own, every proxy entry on the uplink is the
	// node's: those of a run that did not stop cleanly go (the VMs'
	// taps are attached again).
	if ns != "" {
		if err := m.sys.NDP.FlushProxies(ns, uplink); err != nil {
			return err
		}
	}
	if !m.cfg.Static6.IsValid() {
		return nil
	}
	if err := checkStatic6(m.cfg.Static6, m.cfg.Gateway6); err != nil {
		return err
	}
	if err := m.sys.Ifaces.AddAddr(ns, uplink, m.cfg.Static6); err != nil {
		return err
	}
	return m.sys.Routes.Add(ns, Route{Dst: netip.MustParsePrefix("::/0"), Dev: uplink, Via: m.cfg.Gateway6})
}

// checkStatic6 validates the farm's IPv6 public config.
func checkStatic6(p netip.Prefix, gw netip.Addr) error {
	if !p.Addr().Is6() || p.Addr().Is4In6() || p.Bits() != 64 || !IsPublic6(p.Addr()) {
		return fmt.Errorf("public config ipv6 %s: want a public IPv6 address in a /64", p)
	}
	if !gw.Is6() || gw.Is4In6() || !(gw.IsLinkLocalUnicast() || p.Masked().Contains(gw)) || gw == p.Addr() {
		return fmt.Errorf("public config gw6 %s: want a link-local address or one in %s other than the node's", gw, p.Masked())
	}
	return nil
}

// Prefix6 returns the node's public IPv6 /64: the farm's static one, else
// the prefix of the first global /64 address SLAAC put on the uplink
// (ErrNoIPv6 when there is none).
func (m *Manager) Prefix6() (netip.Prefix, error) {
	if m.cfg.Static6.IsValid() {
		return m.cfg.Static6.Masked(), nil
	}
	if !m.cfg.Uplink {
		return netip.Prefix{}, ErrNoIPv6
	}
	uplink, _, err := m.sys.Routes.Default(m.cfg.NodeNS)
	if err != nil {
		return netip.Prefix{}, err
	}
	if uplink == "" {
		return netip.Prefix{}, ErrNoIPv6
	}
	addrs, err := m.sys.Ifaces.Addrs(m.cfg.NodeNS, uplink)
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, a := range addrs {
		if a.Addr().Is6() && !a.Addr().Is4In6() && a.Bits() == 64 && IsPublic6(a.Addr()) {
			return a.Masked(), nil
		}
	}
	return netip.Prefix{}, ErrNoIPv6
}

// Addr6 returns the node's own public IPv6 address: the farm's static
// one, else the uplink's address in Prefix6 (ErrNoIPv6 when none). The
// node's 0-db reports it in namespaces' results.
func (m *Manager) Addr6() (netip.Addr, error) {
	if m.cfg.Static6.IsValid() {
		return m.cfg.Static6.Addr(), nil
	}
	p, err := m.Prefix6()
	if err != nil {
		return netip.Addr{}, err
	}
	uplink, _, err := m.sys.Routes.Default(m.cfg.NodeNS)
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := m.sys.Ifaces.Addrs(m.cfg.NodeNS, uplink)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		if a.Bits() == 64 && p.Contains(a.Addr()) {
			return a.Addr(), nil
		}
	}
	return netip.Addr{}, ErrNoIPv6
}

// HasIPv6 reports whether the node has a public IPv6 /64 (node API
// has_ipv6).
func (m *Manager) HasIPv6() bool {
	_, err := m.Prefix6()
	return err == nil
}

// DeriveIPv6 is the public IPv6 of a VM whose public tap has MAC mac:
// prefix (a /64) with the modified EUI-64 interface identifier of mac,
// the address SLAAC would give that MAC on the node's LAN (as the
// original, where VMs take their IPv6 by SLAAC on the public bridge with
// a MAC derived from the workload). It is deterministic per workload
// (PublicMAC(PublicTap(id))).
func DeriveIPv6(prefix netip.Prefix, mac net.HardwareAddr) (netip.Addr, error) {
	if !prefix.Addr().Is6() || prefix.Addr().Is4In6() || prefix.Bits() != 64 {
		return netip.Addr{}, fmt.Errorf("deriving an IPv6 address: prefix %s is not an IPv6 /64", prefix)
	}
	if len(mac) != 6 {
		return netip.Addr{}, fmt.Errorf("deriving an IPv6 address: MAC %s is not 48 bits", mac)
	}
	b := prefix.Masked().Addr().As16()
	b[8], b[9], b[10] = mac[0]^0x02, mac[1], mac[2]
	b[11], b[12] = 0xff, 0xfe
	b[13], b[14], b[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b), nil
}

// NonPublic6 are the IPv6 ranges tenants may not reach through the node
// (as NonPublic for IPv4): unspecified, loopback, IPv4-mapped, discard,
// unique local (fc00::/7: private LANs), link-local (the farm router's
// usual address), site-local and multicast.
var NonPublic6 = []netip.Prefix{
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::ffff:0:0/96"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("ff00::/8"),
}

// IsPublic6 reports whether ip is an IPv6 address outside NonPublic6.
func IsPublic6(ip netip.Addr) bool {
	if !ip.Is6() {
		return false
	}
	for _, p := range NonPublic6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// attachPublic6 gives tap IPv6 with the node's fe80::1 on it (no DAD, no
// router advertisement accepted, no address of its own), routes ip to it
// and proxies ip on uplink. Caller checked tap and uplink.
func (m *Manager) attachPublic6(tap, uplink string, ip netip.Addr) error {
	if !IsPublic6(ip) {
		return fmt.Errorf("tap %s: %s is not a public IPv6 address", tap, ip)
	}
	ns := m.cfg.NodeNS
	for _, kv := range [][2]string{
		{"net/ipv6/conf/" + tap + "/accept_dad", "0"},
		{"net/ipv6/conf/" + tap + "/disable_ipv6", "0"},
		{"net/ipv6/conf/" + uplink + "/proxy_ndp", "1"},
	} {
		if err := m.sys.Sysctls.Set(ns, kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := m.sys.Ifaces.AddAddr(ns, tap, netip.PrefixFrom(RouterLinkLocal, 64)); err != nil {
		return err
	}
	if err := m.sys.Routes.Add(ns, Route{Dst: netip.PrefixFrom(ip, 128), Dev: tap}); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.sys.NDP.AddProxy(ns, uplink, ip); err != nil {
		return err
	}
	m.proxied[tap] = proxy6{uplink: uplink, ip: ip}
	return nil
}

// unproxy removes the NDP proxy entry of tap's public IPv6. Caller holds
// mu.
func (m *Manager) unproxy(tap string) error {
	p, ok := m.proxied[tap]
	if !ok {
		return nil
	}
	if err := m.sys.NDP.DeleteProxy(m.cfg.NodeNS, p.uplink, p.ip); err != nil {
		return err
	}
	delete(m.proxied, tap)
	return nil
}

// SetStatic6 applies the farm's IPv6 public config as the node's record
// holds it (ipv6 "<address>/64", gw6), once the node knows its record
// (after registration, when Config.Static6 was not known at Start): the
// address on the uplink and the IPv6 default route via gw6. Prefix6 and
// Addr6 find the address on the uplink from then on. Bad values are an
// error and change nothing; it is idempotent.
func (m *Manager) SetStatic6(ipv6, gw6 string) error {
	if !m.cfg.Uplink {
		return errors.New("public config ipv6: this node has no uplink of its own")
	}
	p, err := netip.ParsePrefix(ipv6)
	if err != nil {
		return fmt.Errorf("public config ipv6 %q: %w", ipv6, err)
	}
	gw, err := netip.ParseAddr(gw6)
	if err != nil {
		return fmt.Errorf("public config gw6 %q: %w", gw6, err)
	}
	if err := checkStatic6(p, gw); err != nil {
		return err
	}
	uplink, _, err := m.sys.Routes.Default(m.cfg.NodeNS)
	if err != nil {
		return err
	}
	if uplink == "" {
		return errors.New("public config ipv6: the node namespace has no default route")
	}
	if err := m.sys.Ifaces.AddAddr(m.cfg.NodeNS, uplink, p); err != nil {
		return err
	}
	return m.sys.Routes.Add(m.cfg.NodeNS, Route{Dst: netip.MustParsePrefix("::/0"), Dev: uplink, Via: gw})
}
