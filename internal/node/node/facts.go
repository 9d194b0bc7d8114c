package node

import (
	"slices"

	"github.com/zos-go/zos/internal/node/facts"
	"github.com/zos-go/zos/internal/nodeapi"
)

// DMI implements api.Facts: the machine's DMI facts, read on each call
// (a file read; the table does not change while the node runs).
func (n *Node) DMI() (nodeapi.DMI, error) { return facts.Reader{Root: n.cfg.FactsRoot}.DMI() }

// Hypervisor implements api.Facts: the hypervisor found at start-up, ""
// on bare metal.
func (n *Node) Hypervisor() string { return n.hyper.Name }

// Features implements api.Facts: the workload types the node provisions
// (one per registered manager), then its network capabilities, as the
// original's node_features_get.
func (n *Node) Features() []string {
	var out []string
	if n.engine != nil {
		for _, t := range n.engine.Types() {
			out = append(out, string(t))
		}
	}
	out = append(out, "wireguard")
	if len(n.cfg.PlanetaryPeers) > 0 {
		out = append(out, "yggdrasil")
	}
	return slices.Clip(out)
}
