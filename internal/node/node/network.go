package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"

	"github.com/zos-go/zos/internal/node/api"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/rtnl"
)

var _ api.Network = (*Node)(nil)

// WGPorts implements api.Network: the WireGuard ports in use.
func (n *Node) WGPorts() []uint16 { return n.network.WGPorts() }

// PublicConfig implements api.Network: the public config the farmer set
// on the node's record.
func (n *Node) PublicConfig(ctx context.Context) (api.PublicConfig, error) {
	rec, err := n.grid.Node(ctx, n.nodeID)
	if err != nil {
		return api.PublicConfig{}, fmt.Errorf("reading node %d: %w", n.nodeID, err)
	}
	if rec.PublicConfig == nil {
		return api.PublicConfig{}, fmt.Errorf("node %d has no public config", n.nodeID)
	}
	c := rec.PublicConfig
	return api.PublicConfig{Type: "macvlan", IPv4: c.IPv4, GW4: c.GW4, IPv6: c.IPv6, GW6: c.GW6, Domain: c.Domain}, nil
}

// Interfaces implements api.Network: the addresses of the node's own
// namespace ("zos" is the address workloads are served on).
func (n *Node) Interfaces() (map[string][]string, error) {
	out := map[string][]string{"zos": {n.cfg.ListenIP}}
	if n.cfg.NetNS == "" {
		return out, nil
	}
	addrs, err := rtnl.Addrs(n.cfg.NetNS)
	if err != nil {
		return nil, err
	}
	for name, ps := range addrs {
		for _, p := range ps {
			out[name] = append(out[name], p.Addr().String())
		}
	}
	return out, nil
}

// gateway makes the gateway proxy and its manager when the node is a
// gateway (nil, nil otherwise); the proxy serves once the node runs.
func (n *Node) gateway(cache string, log *slog.Logger) (*gateway.Proxy, *gateway.Manager) {
	if n.cfg.GatewayListen == "" {
		return nil, nil
	}
	log = log.With("module", "gateway")
	var p *gateway.Proxy
	if n.cfg.ACMEDirectory != "" {
		var certs func(*tls.ClientHelloInfo) (*tls.Certificate, error)
		p = gateway.New(func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return certs(h) }, log)
		certs = gateway.ACME(n.cfg.ACMEDirectory, filepath.Join(cache, "acme"), "", p)
	} else {
		log.Warn("gateway_self_signed")
		p = gateway.New((&gateway.SelfSigned{}).GetCertificate, log)
	}
	return p, gateway.NewManager(p, gatewayRegistry{n}, n.network, n.ownIPs)
}

// gatewayRegistry reads name contracts and the node's domain.
type gatewayRegistry struct{ n *Node }

func (g gatewayRegistry) NameOwner(ctx context.Context, name string) (uint32, error) {
	cs, err := g.n.grid.Contracts(ctx, registry.ContractFilter{Type: registry.TypeName, State: registry.StateCreated})
	if err != nil {
		return 0, fmt.Errorf("listing name contracts: %w", err)
	}
	for _, c := range cs {
		if c.Name == name {
			return c.TwinID, nil
		}
	}
	return 0, fmt.Errorf("no active name contract for %q", name)
}

func (g gatewayRegistry) Domain(ctx context.Context) (string, error) {
	rec, err := g.n.grid.Node(ctx, g.n.nodeID)
	if err != nil {
		return "", fmt.Errorf("reading node %d: %w", g.n.nodeID, err)
	}
	if rec.PublicConfig == nil {
		return "", nil
	}
	return rec.PublicConfig.Domain, nil
}

// ownIPs are the node's addresses, which gateway backends may not use.
func (n *Node) ownIPs() []netip.Addr {
	var out []netip.Addr
	if a, err := netip.ParseAddr(n.cfg.ListenIP); err == nil {
		out = append(out, a)
	}
	if addrs, err := rtnl.Addrs(n.cfg.NetNS); err == nil {
		for _, ps := range addrs {
			for _, p := range ps {
				out = append(out, p.Addr())
			}
		}
	}
	return out
}
