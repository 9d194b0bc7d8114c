// Package egress decides which remote addresses the node may contact on a
// tenant's behalf: flist downloads and their block stores, zlogs
// destinations, gateway backends. A tenant names the URL, the node makes the
// connection with its own rights and network position, so without this rule
// a deployment could make the node fetch its own services (loopback), the
// cloud's metadata service (link-local), the farm LAN (private ranges) or
// the node's own addresses, and read the answers back.
//
// A Policy denies those classes unless an explicit Allow prefix covers the
// address (tests and private farms allow their LAN). It is enforced where
// the connection is made: Dialer returns a net.Dialer whose Control hook
// checks the address actually dialled, after name resolution, for every
// connection including those of redirects, so DNS tricks and redirects
// cannot get around it. CheckURL refuses what is certain early (scheme,
// literal addresses) with a clear error.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrDenied is returned (wrapped) for an address the policy refuses.
var ErrDenied = errors.New("address not allowed")

// Class of an address the policy refuses by default.
type Class string

// Classes of refused addresses.
const (
	ClassUnspecified Class = "unspecified"
	ClassLoopback    Class = "loopback"
	ClassLinkLocal   Class = "link-local"
	ClassMulticast   Class = "multicast"
	ClassPrivate     Class = "private"
	ClassReserved    Class = "reserved"
	ClassOwn         Class = "the node's own"
)

// Private ranges: RFC 1918, carrier-grade NAT (RFC 6598), unique local
// IPv6 (RFC 4193). A farm LAN lives here.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// Reserved ranges that are never a public service: "this network", IETF
// protocol assignments, benchmarking, documentation, class E and broadcast,
// the IPv6 discard, documentation and site-local ranges, NAT64 local use.
var reservedRanges = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fec0::/10"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
}

// PrivateRanges returns the private ranges, for a configuration that allows
// them all ("--egress-allow private").
func PrivateRanges() []netip.Prefix { return append([]netip.Prefix(nil), privateRanges...) }

// Policy is the rule. The zero value refuses every class above and allows
// everything else.
type Policy struct {
	// Allow lists prefixes contacted even though they are of a refused
	// class (a farm LAN, a test hub on loopback). The node's own
	// addresses stay refused.
	Allow []netip.Prefix
	// Own returns the node's own addresses (nil: none known). Called on
	// every check, so it must answer from memory.
	Own func() []netip.Addr
}

// ParseAllow parses allow entries: prefixes, single addresses, or the words
// "private" (every private range) and "loopback".
func ParseAllow(entries []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, e := range entries {
		switch e = strings.TrimSpace(e); e {
		case "":
		case "private":
			out = append(out, privateRanges...)
		case "loopback":
			out = append(out, netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		default:
			if p, err := netip.ParsePrefix(e); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(e)
			if err != nil {
				return nil, fmt.Errorf("egress allow %q: not a prefix, an address, private or loopback", e)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out, nil
}

// Classify returns the refused class of a (its IPv4-mapped form is read as
// IPv4), or "" when a is an ordinary public address. Own addresses are not
// considered here.
func Classify(a netip.Addr) Class {
	a = a.Unmap()
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return ClassUnspecified
	case a.IsLoopback():
		return ClassLoopback
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return ClassLinkLocal
	case a.IsMulticast() || a.IsInterfaceLocalMulticast():
		return ClassMulticast
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ClassReserved
	}
	for _, p := range privateRanges {
		if p.Contains(a) {
			return ClassPrivate
		}
	}
	for _, p := range reservedRanges {
		if p.Contains(a) {
			return ClassReserved
		}
	}
	if a.Is6() {
		// IPv4 embedded in IPv6 by the well-known NAT64 prefix or 6to4
		// reaches the same IPv4 address: judge that one.
		if nat64 := netip.MustParsePrefix("64:ff9b::/96"); nat64.Contains(a) {
			b := a.As16()
			return Classify(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
		}
		if sixto4 := netip.MustParsePrefix("2002::/16"); sixto4.Contains(a) {
			b := a.As16()
			return Classify(netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}))
		}
	}
	return ""
}

// Check returns nil when the policy allows contacting a, else an error
// wrapping ErrDenied that names the class.
func (p *Policy) Check(a netip.Addr) error {
	a = a.Unmap()
	// The node's own addresses first: an Allow of the farm LAN must not
	// open the node itself.
	if p.Own != nil {
		for _, o := range p.Own() {
			if o.Unmap() == a {
				return fmt.Errorf("%w: %s is %s address", ErrDenied, a, ClassOwn)
			}
		}
	}
	for _, pr := range p.Allow {
		if pr.Contains(a) {
			return nil
		}
	}
	if c := Classify(a); c != "" {
		return fmt.Errorf("%w: %s is a %s address", ErrDenied, a, c)
	}
	return nil
}

// CheckHostPort checks a "host:port" whose host is a literal address;
// names are left to the dialer's check.
func (p *Policy) CheckHostPort(hostport string) error {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrDenied, hostport, err)
	}
	return p.checkHost(host)
}

func (p *Policy) checkHost(host string) error {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" {
		return fmt.Errorf("%w: no host", ErrDenied)
	}
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return p.Check(a)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return fmt.Errorf("%w: %s is a %s name", ErrDenied, host, ClassLoopback)
	}
	return nil
}

// CheckURL checks a URL a tenant gave: its scheme must be one of schemes
// and a literal host address must be allowed. Host names are resolved and
// checked when dialled (Dialer).
func (p *Policy) CheckURL(raw string, schemes ...string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: bad url: %v", ErrDenied, err)
	}
	ok := false
	for _, s := range schemes {
		if strings.EqualFold(u.Scheme, s) {
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("%w: scheme %q (want one of %s)", ErrDenied, u.Scheme, strings.Join(schemes, ", "))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: url with credentials", ErrDenied)
	}
	if err := p.checkHost(u.Hostname()); err != nil {
		return nil, err
	}
	return u, nil
}

// Control is a net.Dialer Control hook: it refuses a connection to an
// address the policy denies, after name resolution.
func (p *Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: dialling %s %q: %v", ErrDenied, network, address, err)
	}
	return p.Check(ap.Addr())
}

// Dialer returns a copy of base (a zero Dialer when nil) that dials only
// addresses the policy allows.
func (p *Policy) Dialer(base *net.Dialer) *net.Dialer {
	d := &net.Dialer{}
	if base != nil {
		*d = *base
	}
	if prevCtx := d.ControlContext; prevCtx != nil {
		d.ControlContext = func(ctx context.Context, network, address string, c syscall.RawConn) error {
			if err := p.Control(network, address, c); err != nil {
				return err
			}
			return prevCtx(ctx, network, address, c)
		}
		return d
	}
	prev := d.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := p.Control(network, address, c); err != nil {
			return err
		}
		if prev != nil {
			return prev(network, address, c)
		}
		return nil
	}
	return d
}
