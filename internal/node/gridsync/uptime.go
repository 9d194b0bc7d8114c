package gridsync

import (
	"context"
	"fmt"
)

// UptimeLoop registers the node again (its capacity may have changed) and
// reports its uptime, now and every UptimeEvery. Ticks missed while a
// report is slow are not made up: one report per interval at most.
func (s *Sync) UptimeLoop(ctx context.Context) error {
	return s.every(ctx, s.cfg.UptimeEvery, s.reportUptime)
}

func (s *Sync) reportUptime(ctx context.Context) error {
	up, err := s.host.Uptime()
	if err != nil {
		return err
	}
	if err := s.host.Register(ctx); err != nil {
		return err
	}
	if err := s.reg.ReportUptime(ctx, s.cfg.NodeID, uint64(up.Seconds())); err != nil {
		return fmt.Errorf("reporting uptime: %w", err)
	}
	return nil
}
