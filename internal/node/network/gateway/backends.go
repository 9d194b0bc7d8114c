package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/sys/netns"
)

// BackendPolicy says which backend addresses a gateway dials for a tenant.
// The internet reaches whatever the gateway dials, so a backend must not be
// the node itself, the host's metadata service or the farm LAN.
//
// Over the internet path (the workload names no network) an address must
// pass Egress, and is never one of the node's own addresses (Egress.Own) or
// in FarmLAN, whatever Egress.Allow says. Through a tenant's network (the
// workload names one: dialled inside the network resource), an address
// must be private (the tenant's own addresses), not the node's, not in
// NodeRanges, and in FarmLAN only when inside that network's ip_range.
// Addresses are normalised first (IPv4-mapped IPv6 is IPv4; NAT64 and 6to4
// forms are judged by Egress as the IPv4 they reach). Both rules are
// checked when the workload is provisioned and again on every dial, so an
// address that becomes the node's later is still refused.
type BackendPolicy struct {
	// Egress is the node's rule for addresses contacted on a tenant's
	// behalf; its Own returns the node's addresses.
	Egress egress.Policy
	// FarmLAN returns the farm LAN's prefixes (nil: none known).
	FarmLAN func() []netip.Prefix
	// NodeRanges are node-internal prefixes reachable from a network
	// resource (the resources' links towards the node).
	NodeRanges []netip.Prefix
	// NS is the node's namespace, where backends are dialled from over
	// the internet path ("": the caller's).
	NS string
	// DialTimeout bounds a backend connection (0: 10 s).
	DialTimeout time.Duration
}

func (b *BackendPolicy) own(a netip.Addr) bool {
	if b.Egress.Own == nil {
		return false
	}
	for _, o := range b.Egress.Own() {
		if o.Unmap().WithZone("") == a {
			return true
		}
	}
	return false
}

func (b *BackendPolicy) farmLAN(a netip.Addr) (netip.Prefix, bool) {
	if b.FarmLAN == nil {
		return netip.Prefix{}, false
	}
	for _, p := range b.FarmLAN() {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// normal is a's one form: IPv4-mapped read as IPv4, no zone.
func normal(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

// checkInternet checks a backend address dialled from the node.
func (b *BackendPolicy) checkInternet(a netip.Addr) error {
	a = normal(a)
	if b.own(a) {
		return fmt.Errorf("%w: %s is the gateway node itself", egress.ErrDenied, a)
	}
	if p, ok := b.farmLAN(a); ok {
		return fmt.Errorf("%w: %s is in the farm LAN %s", egress.ErrDenied, a, p)
	}
	return b.Egress.Check(a)
}

// checkTenant checks a backend address dialled inside a tenant's network
// whose ip_range is rng (invalid: unknown).
func (b *BackendPolicy) checkTenant(a netip.Addr, rng netip.Prefix) error {
	a = normal(a)
	if b.own(a) {
		return fmt.Errorf("%w: %s is the gateway node itself", egress.ErrDenied, a)
	}
	if c := egress.Classify(a); c != egress.ClassPrivate {
		if c == "" {
			c = "public"
		}
		return fmt.Errorf("%w: %s is a %s address, not one of the tenant's network", egress.ErrDenied, a, c)
	}
	for _, p := range b.NodeRanges {
		if p.Contains(a) {
			return fmt.Errorf("%w: %s is the node's side of the network", egress.ErrDenied, a)
		}
	}
	if p, ok := b.farmLAN(a); ok && !(rng.IsValid() && rng.Contains(a)) {
		return fmt.Errorf("%w: %s is in the farm LAN %s", egress.ErrDenied, a, p)
	}
	return nil
}

func (b *BackendPolicy) dialTimeout() time.Duration {
	if b.DialTimeout > 0 {
		return b.DialTimeout
	}
	return 10 * time.Second
}

// internetDial dials from the node's namespace, checking the address
// actually dialled.
func (b *BackendPolicy) internetDial() DialFunc {
	d := &net.Dialer{Timeout: b.dialTimeout(), Control: func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: dialling %s %q: %v", egress.ErrDenied, network, address, err)
		}
		return b.checkInternet(ap.Addr())
	}}
	if b.NS == "" {
		return d.DialContext
	}
	ns := b.NS
	return func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = netns.Do(ns, func() (err error) {
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// tenantDial dials through a tenant's network with dial, after checking
// the address.
func (b *BackendPolicy) tenantDial(dial DialFunc, rng netip.Prefix) DialFunc {
	timeout := b.dialTimeout()
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%w: dialling %s %q: not ip:port", egress.ErrDenied, network, addr)
		}
		if err := b.checkTenant(ap.Addr(), rng); err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		return dial(ctx, network, addr)
	}
}

// backendAddr returns the address of a backend: "http://ip[:port]", or
// "ip:port" with passthrough.
func backendAddr(b gridtypes.Backend, passthrough bool) (netip.Addr, error) {
	host := string(b)
	if passthrough {
		h, _, err := net.SplitHostPort(host)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("backend %q: %w", b, err)
		}
		host = h
	} else {
		u, err := url.Parse(host)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("backend %q: %w", b, err)
		}
		host = u.Hostname()
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("backend %q: not an IP", b)
	}
	return a, nil
}

// networkRange returns the ip_range of the network workload name in d
// (invalid when d does not hold it).
func networkRange(d *gridtypes.Deployment, name string) netip.Prefix {
	if d == nil {
		return netip.Prefix{}
	}
	wl := d.Get(name)
	if wl == nil || !wl.Type.IsAny(gridtypes.NetworkType, gridtypes.NetworkLightType) {
		return netip.Prefix{}
	}
	var n struct {
		IPRange gridtypes.IPNet `json:"ip_range"`
	}
	if json.Unmarshal(wl.Data, &n) != nil || n.IPRange.IsZero() {
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(n.IPRange.String())
	if err != nil {
		return netip.Prefix{}
	}
	return normalPrefix(p)
}

func normalPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}
