package node

import (
	"context"
	"fmt"

	"github.com/zos-go/zos/internal/node/api"
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
