package node

import (
	"context"

	"github.com/zos-go/zos/internal/node/gridsync"
	"github.com/zos-go/zos/internal/node/power"
)

// powerHost is the node for gridsync's power handling.
type powerHost struct{ n *Node }

var _ gridsync.PowerHost = powerHost{}

// Updating reports whether the self-update module is trying or installing
// a release (a module that cannot say is taken as not updating).
func (h powerHost) Updating() bool {
	u, ok := h.n.cfg.Update.(interface{ Updating() bool })
	return ok && u.Updating()
}

// Standby powers off (cfg.Standby, the boot image) or ends Run.
func (h powerHost) Standby() error {
	if h.n.cfg.Standby != nil {
		return h.n.cfg.Standby()
	}
	select {
	case h.n.standby <- struct{}{}:
	default:
	}
	return nil
}

// Wake sends the magic packets of macs on the node's LANs.
func (h powerHost) Wake(ctx context.Context, macs []string) error {
	return power.Sender{Targets: h.n.cfg.WakeTargets}.Send(ctx, macs)
}
