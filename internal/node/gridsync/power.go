package gridsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/zos-go/zos/internal/node/power"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
)

// PowerRegistry is what the power handling needs of the registry: node
// records, and the node's power reports.
type PowerRegistry interface {
	Node(ctx context.Context, id uint32) (registry.Node, error)
	ReportPower(ctx context.Context, node uint32, state string) error
	ReportPowerRefused(ctx context.Context, node uint32, why string) error
}

// PowerHost is what the power handling needs of the node: whether it is
// updating, going to standby (powering off in the boot image, stopping
// when hosted) and sending magic packets on the farm's LAN.
type PowerHost interface {
	Updating() bool
	Standby() error
	Wake(ctx context.Context, macs []string) error
}

// Power follows the node's power target and wakes nodes of its farm.
type Power struct {
	node uint32
	reg  PowerRegistry
	deps Deployments
	host PowerHost
	log  *slog.Logger

	// refused is set while the node refuses a standby target: Recheck
	// tries again once its deployments or update change.
	refused atomic.Bool
}

// Recheck follows the power target again after a refusal (nothing to do
// otherwise): the node goes to standby once idle. gridsync calls it after
// each used-capacity report and resync.
func (p *Power) Recheck(ctx context.Context) error {
	if !p.refused.Load() {
		return nil
	}
	return p.target(ctx)
}

// NewPower returns the power handling of node.
func NewPower(node uint32, reg PowerRegistry, deps Deployments, host PowerHost, log *slog.Logger) *Power {
	return &Power{node: node, reg: reg, deps: deps, host: host, log: log}
}

// ErrWakeRefused is a wake request for a node outside this node's farm.
var ErrWakeRefused = errors.New("wake refused")

// Handle acts on a power event: EventPowerTargetChanged (standby when the
// target is down and the node is idle, else a refusal on its record) and
// EventWake (magic packets for a node of the same farm). An error is
// one to try again (the registry could not be read or told).
func (p *Power) Handle(ctx context.Context, ev registry.Event) error {
	switch ev.Kind {
	case registry.EventPowerTargetChanged:
		return p.target(ctx)
	case registry.EventWake:
		if ev.Wake == nil {
			return nil
		}
		err := p.Wake(ctx, ev.Wake.NodeID)
		if errors.Is(err, ErrWakeRefused) {
			p.log.Error("wake_refused", "node", ev.Wake.NodeID, "err", err)
			return nil
		}
		return err
	}
	return nil
}

// target reads the node's power target (the record, not the event: a
// replayed event of an old target does nothing) and follows it.
func (p *Power) target(ctx context.Context) error {
	n, err := p.reg.Node(ctx, p.node)
	if err != nil {
		return fmt.Errorf("reading node %d: %w", p.node, err)
	}
	if n.PowerTarget != registry.PowerDown {
		p.refused.Store(false)
		return nil
	}
	all, err := p.deps.All()
	if err != nil {
		return fmt.Errorf("listing deployments: %w", err)
	}
	// Deployments being removed count until every workload is deleted.
	live := 0
	for _, d := range all {
		if !provision.Deleted(d) {
			live++
		}
	}
	if err := power.CheckStandby(live, p.host.Updating()); err != nil {
		p.refused.Store(true)
		p.log.Warn("standby_refused", "reason", err)
		if err := p.reg.ReportPowerRefused(ctx, p.node, err.Error()); err != nil {
			return fmt.Errorf("reporting the standby refusal: %w", err)
		}
		return nil
	}
	p.refused.Store(false)
	if err := p.reg.ReportPower(ctx, p.node, registry.PowerDown); err != nil {
		return fmt.Errorf("reporting standby: %w", err)
	}
	p.log.Info("standby")
	if err := p.host.Standby(); err != nil {
		// Still up: say so, the farmer sees it did not go.
		p.log.Error("standby_failed", "err", err)
		if rerr := p.reg.ReportPowerRefused(ctx, p.node, "standby failed: "+err.Error()); rerr != nil {
			return errors.Join(err, rerr)
		}
	}
	return nil
}

// Wake sends the magic packets of node, once the registry shows it in
// this node's farm (ErrWakeRefused otherwise), to its registered MACs.
func (p *Power) Wake(ctx context.Context, node uint32) error {
	self, err := p.reg.Node(ctx, p.node)
	if err != nil {
		return fmt.Errorf("reading node %d: %w", p.node, err)
	}
	target, err := p.reg.Node(ctx, node)
	if err != nil {
		return fmt.Errorf("reading node %d: %w", node, err)
	}
	if target.FarmID != self.FarmID {
		return fmt.Errorf("%w: node %d is in farm %d, this node in farm %d", ErrWakeRefused, node, target.FarmID, self.FarmID)
	}
	var macs []string
	for _, i := range target.Interfaces {
		if i.MAC != "" {
			macs = append(macs, i.MAC)
		}
	}
	if len(macs) == 0 {
		return fmt.Errorf("%w: node %d registered no MAC", ErrWakeRefused, node)
	}
	if err := p.host.Wake(ctx, macs); err != nil {
		return fmt.Errorf("waking node %d: %w", node, err)
	}
	p.log.Info("wake_sent", "node", node, "macs", macs)
	return nil
}
