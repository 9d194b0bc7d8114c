package node

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/zos-go/zos/internal/node/api"
	"github.com/zos-go/zos/internal/node/planetary"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/nodeapi"
)

// planetaryRetry is how long the node waits before starting the overlay
// again after it failed or ended.
const planetaryRetry = 10 * time.Second

// startPlanetary runs the yggdrasil overlay (`zos planetary`) inside the
// node's namespace when the node has planetary peers. The overlay failing
// or its peers being dead never stops the node: IPv4 and the rest keep
// working, the overlay is restarted, and PlanetaryIP says whether it is up.
func (n *Node) startPlanetary(_ context.Context, r *runner) error {
	if len(n.cfg.PlanetaryPeers) == 0 {
		return nil
	}
	cfg := planetary.Config{DataDir: filepath.Join(n.cfg.DataDir, "planetary"), Peers: n.cfg.PlanetaryPeers, AllowPorts: n.cfg.ownPorts()}
	if err := cfg.Validate(); err != nil {
		return err
	}
	// the key exists before the process starts: the node derives its
	// VMs' overlay addresses from it too
	if _, err := n.planetarySubnet(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("planetary: %w", err)
	}
	argv := append([]string{exe, "planetary"}, cfg.Args(n.cfg.Prefix+"ygg0")...)
	log := n.log.With("component", "planetary")
	r.serve("planetary", func(ctx context.Context) error {
		for {
			p, err := planetary.StartProcess(n.cfg.NetNS, argv, os.Stderr, 30*time.Second)
			if err != nil {
				log.Warn("planetary_down", "err", err)
			} else {
				n.planetaryMu.Lock()
				n.planetary = p
				n.planetaryMu.Unlock()
				log.Info("planetary_up", "address", p.Address, "subnet", p.Subnet)
				select {
				case <-ctx.Done():
				case <-p.Done():
					log.Warn("planetary_down", "err", p.Err())
				}
				n.planetaryMu.Lock()
				n.planetary = nil
				n.planetaryMu.Unlock()
				if err := p.Stop(); err != nil {
					log.Warn("planetary_stop", "err", err)
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(planetaryRetry):
			}
		}
	})
	return nil
}

// PlanetaryIP is the node's overlay address and /64, invalid while the
// overlay is not running.
func (n *Node) PlanetaryIP() (netip.Addr, netip.Prefix) {
	n.planetaryMu.Lock()
	defer n.planetaryMu.Unlock()
	if n.planetary == nil {
		return netip.Addr{}, netip.Prefix{}
	}
	return n.planetary.Address, n.planetary.Subnet
}

// planetarySubnet is the overlay /64 of the node's planetary key, loaded
// (created on first use) once, under planetaryMu so that the node and
// the overlay process never make two keys: VMs get their addresses from
// it while the overlay is still starting or restarting.
func (n *Node) planetarySubnet() (netip.Prefix, error) {
	n.planetaryMu.Lock()
	defer n.planetaryMu.Unlock()
	if n.planetaryNet.IsValid() {
		return n.planetaryNet, nil
	}
	key, err := planetary.LoadKey(filepath.Join(n.cfg.DataDir, "planetary"))
	if err != nil {
		return netip.Prefix{}, err
	}
	_, n.planetaryNet = planetary.Addresses(key)
	return n.planetaryNet, nil
}

// planetaryVMs is what the zmachine manager uses for VMs on the overlay,
// nil when the node runs none (no planetary peers).
func (n *Node) planetaryVMs() primitives.Planetary {
	if len(n.cfg.PlanetaryPeers) == 0 || n.network == nil {
		return nil
	}
	return planetaryVMs{n}
}

// planetaryVMs gives VMs a routed tap on the node's overlay /64.
type planetaryVMs struct{ n *Node }

var _ primitives.Planetary = planetaryVMs{}

func (p planetaryVMs) Subnet() (netip.Prefix, error) { return p.n.planetarySubnet() }
func (p planetaryVMs) AttachPlanetary(tap string, ip netip.Addr) error {
	return p.n.network.AttachPlanetary(tap, ip)
}
func (p planetaryVMs) DetachPlanetary(tap string) error { return p.n.network.DetachPlanetary(tap) }

var _ api.PlanetaryState = (*Node)(nil)

// Planetary implements api.PlanetaryState: the overlay's address, /64 and
// peers as the overlay process last reported them.
func (n *Node) Planetary() (nodeapi.Planetary, error) {
	if len(n.cfg.PlanetaryPeers) == 0 {
		return nodeapi.Planetary{}, fmt.Errorf("%w (started without --planetary-peer)", api.ErrNoPlanetary)
	}
	n.planetaryMu.Lock()
	p := n.planetary
	n.planetaryMu.Unlock()
	out := nodeapi.Planetary{Peers: []nodeapi.PlanetaryPeer{}}
	if p == nil {
		for _, uri := range n.cfg.PlanetaryPeers {
			out.Peers = append(out.Peers, nodeapi.PlanetaryPeer{URI: uri})
		}
		return out, nil
	}
	out.Running, out.Address, out.Subnet = true, p.Address.String(), p.Subnet.String()
	for _, s := range p.Peers() {
		pp := nodeapi.PlanetaryPeer{URI: s.URI, Up: s.Up, Inbound: s.Inbound, Address: s.Address, LastError: s.LastError}
		if !s.Since.IsZero() {
			pp.Since = s.Since.UTC().Format(time.RFC3339)
		}
		out.Peers = append(out.Peers, pp)
	}
	return out, nil
}
