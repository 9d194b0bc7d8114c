package gridsync

import (
	"context"
	"fmt"
	"sort"

	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
)

// ResyncLoop compares the node's deployments with the registry now and
// every ResyncEvery: it catches events missed while the node was down or
// the stream was cut.
func (s *Sync) ResyncLoop(ctx context.Context) error {
	return s.every(ctx, s.cfg.ResyncEvery, s.Resync)
}

// Resync deprovisions the running deployments whose contract is not
// active on the grid and whose owner signed its cancellation. A contract
// the registry lost, or whose cancellation it cannot prove, is kept and
// reported.
func (s *Sync) Resync(ctx context.Context) error {
	active, err := s.reg.ActiveNodeContracts(ctx, s.cfg.NodeID)
	if err != nil {
		return fmt.Errorf("listing active contracts: %w", err)
	}
	ok := map[uint64]bool{}
	for _, c := range active {
		ok[c.ID] = true
	}
	all, err := s.deps.All()
	if err != nil {
		return fmt.Errorf("listing deployments: %w", err)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ContractID < all[j].ContractID })
	for _, d := range all {
		if ok[d.ContractID] || !provision.Active(d) {
			continue
		}
		c, err := s.reg.Contract(ctx, d.ContractID)
		if err == nil && c.State != registry.StateCanceled {
			continue // created since the listing
		}
		if err == nil {
			// The proof must be the deployment owner's: another twin's
			// signed cancel of this contract id does not count.
			if c.TwinID != d.TwinID || c.ID != d.ContractID {
				err = fmt.Errorf("%w: the registry's contract %d is twin %d's, the deployment twin %d's", ErrNoCancelProof, c.ID, c.TwinID, d.TwinID)
			} else {
				err = s.VerifyCancel(ctx, c)
			}
		}
		if err != nil {
			s.log.Warn("resync_kept_deployment", "contract", d.ContractID, "err", err)
			continue
		}
		if err := s.deps.Deprovision(d.TwinID, d.ContractID, "contract canceled (found by resync)"); err != nil {
			s.log.Error("deprovision_failed", "contract", d.ContractID, "err", err)
		}
	}
	s.recheckPower(ctx)
	return nil
}
