package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
)

// Registry is what the manager reads from the grid.
type Registry interface {
	// NameOwner returns the twin holding an active name contract for name.
	NameOwner(ctx context.Context, name string) (uint32, error)
	// Domain returns the domain of the node's public config ("" if none).
	Domain(ctx context.Context) (string, error)
}

// Networks dials inside a twin's network resource on this node.
type Networks interface {
	Dialer(twin uint32, network string) (func(ctx context.Context, network, addr string) (net.Conn, error), error)
}

// Manager provisions gateway-name-proxy and gateway-fqdn-proxy workloads.
type Manager struct {
	proxy  *Proxy
	reg    Registry
	nets   Networks
	ownIPs func() []netip.Addr
}

var _ provision.Manager = (*Manager)(nil)

// NewManager returns the manager of proxy; ownIPs are the node's public
// addresses, which backends may not point at.
func NewManager(proxy *Proxy, reg Registry, nets Networks, ownIPs func() []netip.Addr) *Manager {
	return &Manager{proxy: proxy, reg: reg, nets: nets, ownIPs: ownIPs}
}

func backendIP(b gridtypes.Backend, passthrough bool) (netip.Addr, error) {
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

// Provision validates the workload and adds its route; the result of a
// name proxy carries its fqdn.
func (m *Manager) Provision(ctx context.Context, wl *provision.Workload) (any, error) {
	data, err := wl.WorkloadData()
	if err != nil {
		return nil, err
	}
	domain, err := m.reg.Domain(ctx)
	if err != nil {
		return nil, err
	}
	if domain == "" {
		return nil, fmt.Errorf("this node has no domain in its public config: it is not a gateway")
	}
	var base gridtypes.GatewayBase
	var fqdn string
	var result any
	switch g := data.(type) {
	case *gridtypes.GatewayNameProxy:
		if err := dnsLabel(g.Name); err != nil {
			return nil, fmt.Errorf("name: %w", err)
		}
		owner, err := m.reg.NameOwner(ctx, g.Name)
		if err != nil {
			return nil, fmt.Errorf("name %q: %w", g.Name, err)
		}
		if owner != wl.Deployment.TwinID {
			return nil, fmt.Errorf("name %q is held by another twin", g.Name)
		}
		fqdn = strings.ToLower(g.Name + "." + domain)
		base = g.GatewayBase
		result = gridtypes.GatewayProxyResult{FQDN: fqdn}
	case *gridtypes.GatewayFQDNProxy:
		fqdn = strings.ToLower(strings.TrimSuffix(g.FQDN, "."))
		for _, l := range strings.Split(fqdn, ".") {
			if err := dnsLabel(l); err != nil {
				return nil, fmt.Errorf("fqdn %q: %w", g.FQDN, err)
			}
		}
		if fqdn == domain || strings.HasSuffix(fqdn, "."+domain) {
			return nil, fmt.Errorf("fqdn %q is under the gateway's domain: use a name proxy", g.FQDN)
		}
		base = g.GatewayBase
		result = struct{}{}
	default:
		return nil, fmt.Errorf("workload %s is a %s, not a gateway", wl.Name, wl.Type)
	}
	route := Route{FQDN: fqdn, Passthrough: base.TLSPassthrough}
	own := map[netip.Addr]bool{}
	for _, a := range m.ownIPs() {
		own[a] = true
	}
	for _, b := range base.Backends {
		if err := b.Valid(base.TLSPassthrough); err != nil {
			return nil, err
		}
		a, err := backendIP(b, base.TLSPassthrough)
		if err != nil {
			return nil, err
		}
		if own[a] {
			return nil, fmt.Errorf("backend %q points at the gateway node itself", b)
		}
		route.Backends = append(route.Backends, string(b))
	}
	if base.Network != nil {
		d, err := m.nets.Dialer(wl.Deployment.TwinID, *base.Network)
		if err != nil {
			return nil, err
		}
		route.Dial = d
	}
	if err := m.proxy.Set(string(wl.ID), route); err != nil {
		return nil, err
	}
	return result, nil
}

// Deprovision removes the route.
func (m *Manager) Deprovision(_ context.Context, wl *provision.Workload) error {
	m.proxy.Delete(string(wl.ID))
	return nil
}

// dnsLabel checks that s is a DNS label (RFC 1123): 1 to 63 letters,
// digits and inner hyphens.
func dnsLabel(s string) error {
	if len(s) == 0 || len(s) > 63 {
		return fmt.Errorf("%q is not a DNS label (1 to 63 characters)", s)
	}
	for i, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%q is not a DNS label (letters, digits and inner hyphens)", s)
		}
	}
	return nil
}
