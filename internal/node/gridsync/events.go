package gridsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
)

// EventsLoop follows the node's event stream from the last sequence it
// handled (kept in SeqFile), deprovisions the contracts whose owner
// signed their cancellation and applies the billing state changes the
// grid's billing key signed (pause, resume, out of funds) and, with
// cfg.Power, the power target and wake requests. A resync event (events aged out of the
// stream) compares the deployments with the registry instead.
func (s *Sync) EventsLoop(ctx context.Context) error {
	var last uint64
	if b, err := os.ReadFile(s.cfg.SeqFile); err == nil {
		last, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	// The watch ends with this loop, also when it returns early.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.reg.WatchNode(ctx, s.cfg.NodeID, last)
	if err != nil {
		return fmt.Errorf("watching node events: %w", err)
	}
	for ev := range ch {
		if ev.Kind == registry.EventResync {
			if err := s.Resync(ctx); err != nil {
				s.log.Warn("resync_failed", "err", err)
			}
			continue
		}
		if ev.Kind == registry.EventContractCanceled && ev.Contract != nil {
			s.canceled(ctx, *ev.Contract)
		}
		if (ev.Kind == registry.EventPowerTargetChanged || ev.Kind == registry.EventWake) && s.cfg.Power != nil {
			if err := s.cfg.Power.Handle(ctx, ev); err != nil {
				// Not saved: the event is handled again after a restart.
				return fmt.Errorf("power event %d: %w", ev.Seq, err)
			}
		}
		if ev.Kind == registry.EventContractState && ev.State != nil {
			if err := s.contractState(ctx, *ev.State); err != nil {
				// Not saved: the change is handled again after a restart.
				return fmt.Errorf("contract state event %d: %w", ev.Seq, err)
			}
		}
		if err := atomicfile.WriteFile(s.cfg.SeqFile, []byte(strconv.FormatUint(ev.Seq, 10)), 0o600); err != nil {
			s.log.Warn("events_seq_save_failed", "err", err)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("event stream closed")
}

// canceled deprovisions the deployment of a contract the event says is
// canceled, once its owner's signature shows it.
func (s *Sync) canceled(ctx context.Context, c registry.Contract) {
	if err := s.VerifyCancel(ctx, c); err != nil {
		s.log.Error("cancel_event_rejected", "contract", c.ID, "err", err)
		return
	}
	err := s.deps.Deprovision(c.TwinID, c.ID, "contract canceled")
	if err != nil && !errors.Is(err, provision.ErrNotFound) {
		s.log.Error("deprovision_failed", "contract", c.ID, "err", err)
	}
}
