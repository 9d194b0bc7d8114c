package gridtypes

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
)

// Backend is where a gateway sends traffic: "http://ip[:port]", or "ip:port"
// with TLS passthrough.
type Backend string

// Valid checks the backend for the gateway mode.
func (b Backend) Valid(passthrough bool) error {
	if passthrough {
		host, port, err := net.SplitHostPort(string(b))
		if err != nil || port == "" {
			return fmt.Errorf("%q must be ip:port with tls_passthrough", string(b))
		}
		return validBackendIP(string(b), host)
	}
	u, err := url.Parse(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a URL", string(b))
	}
	if u.Scheme != "http" {
		return fmt.Errorf("%q must use the http scheme", string(b))
	}
	return validBackendIP(string(b), u.Hostname())
}

func validBackendIP(b, host string) error {
	ip := net.ParseIP(host)
	if ip == nil {
		return fmt.Errorf("%q: %q is not an IP address", b, host)
	}
	if ip.IsLoopback() || ip.IsUnspecified() {
		return fmt.Errorf("%q: loopback and unspecified addresses are not allowed", b)
	}
	return nil
}

// GatewayBase is what both gateway kinds share.
type GatewayBase struct {
	TLSPassthrough bool      `json:"tls_passthrough"`
	Backends       []Backend `json:"backends"`
	Network        *string   `json:"network,omitempty"`
}

// challengeAfter is the challenge of a gateway: first (its name or fqdn),
// then the base.
func (g *GatewayBase) challengeAfter(w io.Writer, first string) error {
	c := &challenger{w: w}
	c.s(first)
	g.challenge(c)
	return c.err
}

func (g *GatewayBase) challenge(c *challenger) {
	c.t(g.TLSPassthrough)
	for _, b := range g.Backends {
		c.s(string(b))
	}
	if g.Network != nil {
		c.s(*g.Network)
	}
}

func (g *GatewayBase) valid(d *Deployment) error {
	if len(g.Backends) == 0 {
		return fmt.Errorf("backends: at least one is required")
	}
	for i, b := range g.Backends {
		if err := b.Valid(g.TLSPassthrough); err != nil {
			return fmt.Errorf("backends[%d]: %w", i, err)
		}
	}
	if g.Network != nil && d != nil {
		wl := d.Get(*g.Network)
		if wl != nil && !wl.Type.IsAny(NetworkType, NetworkLightType) {
			return fmt.Errorf("network: %q is a %s, not a network", *g.Network, wl.Type)
		}
	}
	return nil
}

var (
	gwNameRe = regexp.MustCompile(`^[a-zA-Z0-9-_]+$`)
	fqdnRe   = regexp.MustCompile(`^([a-zA-Z0-9-_]+\.)+[a-zA-Z0-9-_]{2,}$`)
)

// GatewayNameProxy exposes backends under <name>.<node domain>.
type GatewayNameProxy struct {
	GatewayBase
	Name string `json:"name"`
}

// GatewayProxyResult is the result data of a name proxy.
type GatewayProxyResult struct {
	FQDN string `json:"fqdn"`
}

// Challenge writes the name, then the base.
func (g *GatewayNameProxy) Challenge(w io.Writer) error { return g.challengeAfter(w, g.Name) }

// Valid checks the name and the backends.
func (g *GatewayNameProxy) Valid(d *Deployment) error {
	if !gwNameRe.MatchString(g.Name) {
		return fmt.Errorf("name: %q may only contain letters, digits, '-' and '_'", g.Name)
	}
	return g.valid(d)
}

// Capacity is zero (billed by traffic).
func (g *GatewayNameProxy) Capacity() (Capacity, error) { return Capacity{}, nil }

// GatewayFQDNProxy exposes backends under a domain the user owns.
type GatewayFQDNProxy struct {
	GatewayBase
	FQDN string `json:"fqdn"`
}

// Challenge writes the fqdn, then the base.
func (g *GatewayFQDNProxy) Challenge(w io.Writer) error { return g.challengeAfter(w, g.FQDN) }

// Valid checks the fqdn and the backends.
func (g *GatewayFQDNProxy) Valid(d *Deployment) error {
	if !fqdnRe.MatchString(g.FQDN) {
		return fmt.Errorf("fqdn: %q is not a domain name", g.FQDN)
	}
	return g.valid(d)
}

// Capacity is zero (billed by traffic).
func (g *GatewayFQDNProxy) Capacity() (Capacity, error) { return Capacity{}, nil }
