package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/billing"
)

// Source tells what every contract of the node holds now.
type Source interface {
	Samples(ctx context.Context) ([]Sample, error)
}

// Reporter sends closed windows to the registry (registry.Client's
// ReportUsage, signed by the node).
type Reporter interface {
	ReportUsage(ctx context.Context, reports []billing.UsageReport) error
}

// Config of the usage loop.
type Config struct {
	NodeID uint32
	// File keeps the meter's state (open and unsent windows).
	File string
	// SampleEvery is how often contracts are looked at (a change between
	// two looks is seen at the second; Changed looks at once); ReportEvery
	// how often windows end and are reported. At most billing.MaxWindow.
	SampleEvery, ReportEvery time.Duration
	// Batch bounds the windows of one report (100 when 0).
	Batch int
	// Final says the registry refused a report for good: it was reported
	// already, or it never will be accepted (default: billing.ErrInvalid).
	// Such a report is dropped; any other error keeps it for later.
	Final func(error) bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// After is the timer (time.After when nil; tests drive it).
	After func(time.Duration) <-chan time.Time
}

// Usage meters the node's contracts and reports their windows.
type Usage struct {
	cfg Config
	src Source
	rep Reporter
	log *slog.Logger

	mu      sync.Mutex // guards meter, lastCut
	meter   *Meter
	lastCut int64
	sendMu  sync.Mutex // one report at a time: Drop counts from the front
	wake    chan struct{}
}

// New loads the state kept in cfg.File; a window open when the node
// stopped ends at the last moment it was seen.
func New(cfg Config, src Source, rep Reporter, log *slog.Logger) (*Usage, error) {
	if cfg.SampleEvery <= 0 || cfg.ReportEvery <= 0 || cfg.ReportEvery > billing.MaxWindow*time.Second {
		return nil, fmt.Errorf("usage periods: sample every %s, report every %s (at most %d s)", cfg.SampleEvery, cfg.ReportEvery, billing.MaxWindow)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 100
	}
	if cfg.Final == nil {
		cfg.Final = func(err error) bool { return errors.Is(err, billing.ErrInvalid) }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	var st *State
	b, err := os.ReadFile(cfg.File)
	switch {
	case err == nil:
		st = &State{}
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("reading usage state %s: %w", cfg.File, err)
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("reading usage state: %w", err)
	}
	u := &Usage{cfg: cfg, src: src, rep: rep, log: log, meter: NewMeter(cfg.NodeID, st), wake: make(chan struct{}, 1),
		lastCut: cfg.Now().Unix()}
	return u, u.save()
}

// Changed asks for a look at the contracts at once (a deployment's
// capacity changed: the engine's OnJobDone).
func (u *Usage) Changed() {
	select {
	case u.wake <- struct{}{}:
	default:
	}
}

// Pending returns the windows not yet accepted.
func (u *Usage) Pending() []billing.UsageReport {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]billing.UsageReport(nil), u.meter.Pending()...)
}

// Loop looks at the contracts every SampleEvery (and when Changed), ends
// the windows every ReportEvery and reports what is pending, until ctx
// ends. A failed look or report is logged and tried again.
func (u *Usage) Loop(ctx context.Context) error {
	for {
		if err := u.Step(ctx); err != nil {
			u.log.Warn("usage_step_failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-u.wake:
		case <-u.cfg.After(u.cfg.SampleEvery):
		}
	}
}

// Step looks at the contracts once, ends the windows when a report period
// passed, and then reports what is pending.
func (u *Usage) Step(ctx context.Context) error {
	samples, err := u.src.Samples(ctx)
	if err != nil {
		return fmt.Errorf("reading what contracts hold: %w", err)
	}
	now := u.cfg.Now().Unix()
	u.mu.Lock()
	u.meter.Observe(now, samples)
	due := now-u.lastCut >= int64(u.cfg.ReportEvery/time.Second)
	if due {
		u.meter.Cut(now)
		u.lastCut = now
	}
	err = u.save()
	u.mu.Unlock()
	if err != nil {
		return err
	}
	if !due {
		return nil
	}
	return u.Report(ctx)
}

// Report sends the pending windows in batches, dropping each one the
// registry accepted or refused for good.
func (u *Usage) Report(ctx context.Context) error {
	u.sendMu.Lock()
	defer u.sendMu.Unlock()
	for {
		u.mu.Lock()
		p := u.meter.Pending()
		batch := append([]billing.UsageReport(nil), p[:min(len(p), u.cfg.Batch)]...)
		u.mu.Unlock()
		if len(batch) == 0 {
			return nil
		}
		err := u.rep.ReportUsage(ctx, batch)
		switch {
		case err == nil:
		case u.cfg.Final(err) && len(batch) == 1:
			u.log.Warn("usage_report_dropped", "contract", batch[0].ContractID, "start", batch[0].Start, "err", err)
		case u.cfg.Final(err):
			// One of them is refused: report them one by one.
			for _, r := range batch {
				if err := u.rep.ReportUsage(ctx, []billing.UsageReport{r}); err != nil && !u.cfg.Final(err) {
					return fmt.Errorf("reporting usage: %w", err)
				} else if err != nil {
					u.log.Warn("usage_report_dropped", "contract", r.ContractID, "start", r.Start, "err", err)
				}
				if err := u.drop(1); err != nil {
					return err
				}
			}
			continue
		default:
			return fmt.Errorf("reporting usage: %w", err)
		}
		if err := u.drop(len(batch)); err != nil {
			return err
		}
	}
}

func (u *Usage) drop(n int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.meter.Drop(n)
	return u.save()
}

// save writes the meter's state; called with mu held.
func (u *Usage) save() error {
	b, err := json.Marshal(u.meter.State())
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(u.cfg.File, b, 0o600); err != nil {
		return fmt.Errorf("keeping usage state: %w", err)
	}
	return nil
}
