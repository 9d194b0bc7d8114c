package gateway

import (
	"context"
	"fmt"
	"net"
	"net/netip"
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
	policy BackendPolicy
	proxy  *Proxy
	reg    Registry
	nets   Networks
}

var (
	_ provision.Manager = (*Manager)(nil)
	_ provision.Pauser  = (*Manager)(nil)
)

// ManagerConfig configures a Manager.
type ManagerConfig struct {
	// Backends says which backends tenants may name.
	Backends BackendPolicy
}

// NewManager returns the manager of proxy.
func NewManager(cfg ManagerConfig, proxy *Proxy, reg Registry, nets Networks) *Manager {
	return &Manager{policy: cfg.Backends, proxy: proxy, reg: reg, nets: nets}
}

// Provision validates the workload and adds its route; the result of a
// name proxy carries its fqdn.
func (m *Manager) Provision(ctx context.Context, wl *provision.Workload) (any, error) {
	data, err := wl.WorkloadData()
	if err != nil {
		return nil, err
	}
	raw, err := m.reg.Domain(ctx)
	if err != nil {
		return nil, err
	}
	if raw == "" {
		return nil, fmt.Errorf("this node has no domain in its public config: it is not a gateway")
	}
	// The farmer may write the domain in any case, with a trailing dot:
	// compared unnormalised, "alice.<domain>" would not look like a name
	// under it and another twin could take it as an fqdn.
	domain, err := Normalize(raw)
	if err != nil {
		return nil, fmt.Errorf("the node's domain in its public config: %w", err)
	}
	var base gridtypes.GatewayBase
	var fqdn string
	var result any
	switch g := data.(type) {
	case *gridtypes.GatewayNameProxy:
		// Name contracts are lower case.
		name := strings.ToLower(g.Name)
		if err := dnsLabel(name); err != nil {
			return nil, fmt.Errorf("name: %w", err)
		}
		owner, err := m.reg.NameOwner(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("name %q: %w", name, err)
		}
		if owner != wl.Deployment.TwinID {
			return nil, fmt.Errorf("name %q is held by another twin", name)
		}
		fqdn = name + "." + domain
		base = g.GatewayBase
		result = gridtypes.GatewayProxyResult{FQDN: fqdn}
	case *gridtypes.GatewayFQDNProxy:
		if fqdn, err = Normalize(g.FQDN); err != nil {
			return nil, fmt.Errorf("fqdn: %w", err)
		}
		if underDomain(fqdn, domain) {
			return nil, fmt.Errorf("fqdn %q is under the gateway's domain %s: use a name proxy", g.FQDN, domain)
		}
		base = g.GatewayBase
		result = struct{}{}
	default:
		return nil, fmt.Errorf("workload %s is a %s, not a gateway", wl.Name, wl.Type)
	}
	route := Route{FQDN: fqdn, Passthrough: base.TLSPassthrough, Twin: wl.Deployment.TwinID}
	if base.Network != nil {
		rng := networkRange(wl.Deployment, *base.Network)
		for _, b := range base.Backends {
			if err := m.backend(b, base.TLSPassthrough, func(a netip.Addr) error { return m.policy.checkTenant(a, rng) }); err != nil {
				return nil, err
			}
			route.Backends = append(route.Backends, string(b))
		}
		d, err := m.nets.Dialer(wl.Deployment.TwinID, *base.Network)
		if err != nil {
			return nil, err
		}
		route.Dial = m.policy.tenantDial(d, rng)
	} else {
		for _, b := range base.Backends {
			if err := m.backend(b, base.TLSPassthrough, m.policy.checkInternet); err != nil {
				return nil, err
			}
			route.Backends = append(route.Backends, string(b))
		}
		route.Dial = m.policy.internetDial()
	}
	if err := m.proxy.Set(string(wl.ID), route); err != nil {
		return nil, err
	}
	return result, nil
}

// backend validates b and checks its address with check.
func (m *Manager) backend(b gridtypes.Backend, passthrough bool, check func(netip.Addr) error) error {
	if err := b.Valid(passthrough); err != nil {
		return err
	}
	a, err := backendAddr(b, passthrough)
	if err != nil {
		return err
	}
	if err := check(a); err != nil {
		return fmt.Errorf("backend %q: %w", b, err)
	}
	return nil
}

// Deprovision removes the route (and the certificate of its name).
func (m *Manager) Deprovision(_ context.Context, wl *provision.Workload) error {
	m.proxy.Delete(string(wl.ID))
	return nil
}

// Pause stops serving the workload's name (its contract's grace period);
// the name stays the workload's.
func (m *Manager) Pause(_ context.Context, wl *provision.Workload) error {
	return m.proxy.SetPaused(string(wl.ID), true)
}

// Resume serves the workload's name again.
func (m *Manager) Resume(_ context.Context, wl *provision.Workload) error {
	return m.proxy.SetPaused(string(wl.ID), false)
}
