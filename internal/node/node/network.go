package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/node/api"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/rtnl"
)

var _ api.Network = (*Node)(nil)

// WGPorts implements api.Network: the WireGuard ports in use.
func (n *Node) WGPorts() []uint16 { return n.network.WGPorts() }

// PublicConfig implements api.Network: the public config the farmer set
// on the node's record.
func (n *Node) PublicConfig(ctx context.Context) (nodeapi.PublicConfig, error) {
	rec, err := n.grid.Node(ctx, n.ID())
	if err != nil {
		return nodeapi.PublicConfig{}, fmt.Errorf("reading node %d: %w", n.ID(), err)
	}
	if rec.PublicConfig == nil {
		return nodeapi.PublicConfig{}, fmt.Errorf("node %d has no public config", n.ID())
	}
	c := rec.PublicConfig
	return nodeapi.PublicConfig{Type: "macvlan", IPv4: c.IPv4, GW4: c.GW4, IPv6: c.IPv6, GW6: c.GW6, Domain: c.Domain}, nil
}

// HasIPv6 implements api.Network: whether the network module found a
// public IPv6 /64 on the node's uplink (or has the farm's static one).
func (n *Node) HasIPv6() bool { return n.network != nil && n.network.HasIPv6() }

// Interfaces implements api.Network: the addresses of the node's own
// namespace ("zos" is the address workloads are served on).
func (n *Node) Interfaces() (map[string][]string, error) {
	out := map[string][]string{"zos": {n.cfg.ListenIP}}
	if ip, _ := n.PlanetaryIP(); ip.IsValid() {
		out["planetary"] = []string{ip.String()}
	}
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
// Certificates come from ACME, one account per twin, or are self-signed;
// backends are checked against the node's egress policy, its addresses
// and its LAN (see gateway.BackendPolicy).
func (n *Node) gateway(cache string, log *slog.Logger) (*gateway.Proxy, *gateway.Manager) {
	if n.cfg.GatewayListen == "" {
		return nil, nil
	}
	log = log.With("module", "gateway")
	var certs gateway.Certs
	if n.cfg.ACMEDirectory != "" {
		certs = gateway.NewACME(gateway.ACMEConfig{Directory: n.cfg.ACMEDirectory, CacheDir: filepath.Join(cache, "acme")}, log)
	} else {
		log.Warn("gateway_self_signed")
		certs = &gateway.SelfSigned{}
	}
	p := gateway.New(gateway.Config{}, certs, log)
	addrs := n.gatewayAddrs(time.Second)
	policy := gateway.BackendPolicy{
		Egress:     egress.Policy{Allow: n.egress.Allow, Own: func() []netip.Addr { own, _ := addrs(); return own }},
		FarmLAN:    func() []netip.Prefix { _, lan := addrs(); return lan },
		NodeRanges: []netip.Prefix{network.PublicRange},
		NS:         n.cfg.NetNS,
	}
	return p, gateway.NewManager(gateway.ManagerConfig{Backends: policy}, p, gatewayRegistry{n}, n.network)
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
	rec, err := g.n.grid.Node(ctx, g.n.ID())
	if err != nil {
		return "", fmt.Errorf("reading node %d: %w", g.n.ID(), err)
	}
	if rec.PublicConfig == nil {
		return "", nil
	}
	return rec.PublicConfig.Domain, nil
}

// gatewayAddrs returns the node's own addresses (ListenIP, those of its
// namespace and of the process's) and its LAN (the prefixes of its
// namespace's addresses), listed again when older than ttl: gateway
// backends are checked on every dial.
func (n *Node) gatewayAddrs(ttl time.Duration) func() ([]netip.Addr, []netip.Prefix) {
	var (
		mu  sync.Mutex // guards own, lan, at
		own []netip.Addr
		lan []netip.Prefix
		at  time.Time
	)
	return func() ([]netip.Addr, []netip.Prefix) {
		mu.Lock()
		defer mu.Unlock()
		if !at.IsZero() && time.Since(at) < ttl {
			return own, lan
		}
		addrs, err := rtnl.Addrs(n.cfg.NetNS)
		if err != nil && !at.IsZero() {
			return own, lan // a failed listing keeps the previous one
		}
		own, lan = nil, nil
		if a, err := netip.ParseAddr(n.cfg.ListenIP); err == nil {
			own = append(own, a)
		}
		for _, ps := range addrs {
			for _, p := range ps {
				own = append(own, p.Addr())
				lan = append(lan, p.Masked())
			}
		}
		if n.egress.Own != nil {
			own = append(own, n.egress.Own()...)
		}
		if err == nil {
			at = time.Now()
		}
		return own, lan
	}
}
