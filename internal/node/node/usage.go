package node

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/usage"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/rtnl"
)

// startUsage meters what each contract holds and reports it, when the
// node has a usage reporter (the registry client's ReportUsage).
func (n *Node) startUsage(_ context.Context, r *runner) error {
	if n.cfg.UsageReporter == nil {
		return nil
	}
	u, err := usage.New(usage.Config{
		NodeID: n.ID(), File: filepath.Join(n.cfg.DataDir, "usage.json"),
		SampleEvery: n.cfg.UsageSampleEvery, ReportEvery: n.cfg.UsageReportEvery,
		Final: finalUsageRefusal,
	}, usageSource{n}, n.cfg.UsageReporter, n.log.With("component", "usage"))
	if err != nil {
		return err
	}
	n.usage.Store(u)
	n.serveLoop(r, "usage", u.Loop)
	return nil
}

// usageSource is what the node's contracts hold now: the capacity of
// their running (or paused) workloads, their public IPs, and the bytes of
// their VMs' taps.
type usageSource struct{ n *Node }

func (s usageSource) Samples(context.Context) ([]usage.Sample, error) {
	all, err := s.n.store.All()
	if err != nil {
		return nil, err
	}
	var out []usage.Sample
	for _, d := range all {
		c, err := provision.UsedBy(d)
		if err != nil {
			return nil, err
		}
		if c.Zero() {
			continue
		}
		out = append(out, usage.Sample{Contract: d.ContractID, CRU: c.CRU, MRU: uint64(c.MRU), SRU: uint64(c.SRU), HRU: uint64(c.HRU),
			PublicIPs: uint32(min(c.IPV4U, 1<<16)), NetBytes: s.netBytes(d)})
	}
	return out, nil
}

// netBytes sums what the taps of d's VMs received and sent (private and
// public); a tap that is missing counts nothing.
func (s usageSource) netBytes(d *gridtypes.Deployment) uint64 {
	if s.n.vms == nil {
		return 0
	}
	var sum uint64
	for _, wl := range d.ByType(gridtypes.ZMachineType, gridtypes.ZMachineLightType) {
		if !wl.Result.State.IsOkay() {
			continue
		}
		id := d.WorkloadID(wl.Name)
		for _, tap := range []string{s.n.vms.manager.TapName(id), network.PublicTap(id)} {
			if rx, tx, err := rtnl.LinkBytes(s.n.cfg.NetNS, tap); err == nil {
				sum += rx + tx
			}
		}
	}
	return sum
}

// finalUsageRefusal says the registry will never take a report: it has the
// window already (exists), or the report or its contract is not one it
// accepts (invalid, unknown, not this node's). Anything else is tried again.
func finalUsageRefusal(err error) bool {
	return errors.Is(err, billing.ErrInvalid) || errors.Is(err, registry.ErrExists) || errors.Is(err, registry.ErrInvalid) ||
		errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrUnauthorized)
}

// usageDefaults fills the usage periods.
func usageDefaults(c *Config) {
	if c.UsageReportEvery <= 0 {
		c.UsageReportEvery = time.Hour
	}
	if c.UsageSampleEvery <= 0 {
		// Once a minute, and at least twice a report period.
		c.UsageSampleEvery = min(time.Minute, c.UsageReportEvery/2)
	}
}
