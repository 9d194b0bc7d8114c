package gridsync

import (
	"context"
	"errors"
	"fmt"

	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
)

// MarkUsed marks a contract whose use changed after a job (the engine's
// OnJobDone); UsedLoop reports the marked contracts together, so a burst
// of deployments costs the registry one write per interval instead of one
// per job.
func (s *Sync) MarkUsed(twin uint32, contract uint64) {
	s.mu.Lock()
	if s.dirty == nil {
		s.dirty = map[uint64]uint32{}
	}
	s.dirty[contract] = twin
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// UsedLoop reports what the marked contracts use, at most once per
// UsedDelay. A failed report keeps them marked for the next round.
func (s *Sync) UsedLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.cfg.After(s.cfg.UsedDelay):
		}
		if err := s.reportUsed(ctx); err != nil {
			return err
		}
	}
}

func (s *Sync) reportUsed(ctx context.Context) error {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = nil
	s.mu.Unlock()
	if len(dirty) == 0 {
		return nil
	}
	used, err := s.usedBy(dirty)
	if err == nil {
		err = s.reg.ReportUsed(ctx, s.cfg.NodeID, used)
		if err != nil {
			err = fmt.Errorf("reporting used capacity: %w", err)
		}
	}
	if err != nil {
		s.remark(dirty)
		return err
	}
	s.recheckPower(ctx)
	return nil
}

// recheckPower follows a refused standby target again (the node's
// deployments changed); a failure waits for the next change or resync.
func (s *Sync) recheckPower(ctx context.Context) {
	if s.cfg.Power == nil {
		return
	}
	if err := s.cfg.Power.Recheck(ctx); err != nil {
		s.log.Warn("power_recheck_failed", "err", err)
	}
}

// usedBy reads what each contract's deployment uses (nothing once gone).
func (s *Sync) usedBy(dirty map[uint64]uint32) (map[uint64]registry.Resources, error) {
	used := make(map[uint64]registry.Resources, len(dirty))
	for contract, twin := range dirty {
		d, err := s.deps.Get(twin, contract)
		if errors.Is(err, provision.ErrNotFound) {
			used[contract] = registry.Resources{}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading contract %d: %w", contract, err)
		}
		c, err := provision.UsedBy(d)
		if err != nil {
			return nil, fmt.Errorf("contract %d: %w", contract, err)
		}
		used[contract] = registry.Resources{CRU: c.CRU, MRU: c.MRU, SRU: c.SRU, HRU: c.HRU}
	}
	return used, nil
}

// remark marks again the contracts of a failed round, unless marked
// since, and wakes the loop that will report them after its restart.
func (s *Sync) remark(dirty map[uint64]uint32) {
	s.mu.Lock()
	if s.dirty == nil {
		s.dirty = map[uint64]uint32{}
	}
	for contract, twin := range dirty {
		if _, again := s.dirty[contract]; !again {
			s.dirty[contract] = twin
		}
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
