package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/release"
)

// Config of the update module.
type Config struct {
	Dir     string        // DATA/update
	Hub     string        // the grid's hub (release repository)
	Root    []byte        // the TUF root the node trusts first
	Channel string        // production, testing, ... (unless the farm chose one)
	Every   time.Duration // how often the channel is checked (1 min when 0)
	Gate    time.Duration // the bound of the health gate (2 min when 0)
	Running string        // this binary's version
	// Preflight bounds `NEW version`, run before switching (10 s when 0).
	Preflight time.Duration
}

func (c *Config) defaults() {
	if c.Every <= 0 {
		c.Every = time.Minute
	}
	if c.Gate <= 0 {
		c.Gate = 2 * time.Minute
	}
	if c.Preflight <= 0 {
		c.Preflight = 10 * time.Second
	}
}

// Switch is returned by Run when the node must exec another zos: a new
// version on trial, or the previous one after a failed gate. The node
// stops (as for a restart: workloads stay), then execs Binary with the
// node's arguments and Environ(env, Trial).
type Switch struct {
	Binary  string
	Version string // the version Binary is
	Trial   string // set when Binary is a trial (start a guard for it)
	Reason  string
}

func (s *Switch) Error() string { return fmt.Sprintf("switching to %s: %s", s.Version, s.Reason) }

// Host is what the module asks of the node: whether it is up
// (connected, registered, reported, its modules fine), who it is (for
// staged rollouts) and the channel its farm chose. An alias, so that the node package can name the same
// type without importing this one.
type Host = interface {
	Healthy() error
	NodeID() uint32
	FarmID() uint32
	// FarmChannel is the channel the node's farm chose ("": none).
	FarmChannel(ctx context.Context) (string, error)
}

// Manager watches the channel and gates trials.
type Manager struct {
	cfg   Config
	trial bool
	log   *slog.Logger

	mu     sync.Mutex // guards failed
	failed []string

	host Host // set by Run; nil in tests of check: every rollout admits

	// busy is set while a trial is gated or a release installed (the
	// node refuses standby then).
	busy atomic.Bool
}

// Updating reports whether a trial is being gated or a release installed.
func (m *Manager) Updating() bool { return m.busy.Load() }

// New makes the module; trial is Boot's Decision.Trial.
func New(cfg Config, trial bool, log *slog.Logger) (*Manager, error) {
	cfg.defaults()
	if cfg.Dir == "" || cfg.Hub == "" || len(cfg.Root) == 0 || !release.ValidName(cfg.Channel) || cfg.Running == "" {
		return nil, errors.New("update needs a directory, a hub, a trusted root, a channel and the running version")
	}
	s, err := LoadState(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if err := cleanSlots(cfg.Dir, s.Current, s.Previous, s.Trying, cfg.Running); err != nil {
		log.Warn("update_clean_failed", "err", err)
	}
	return &Manager{cfg: cfg, trial: trial, log: log, failed: s.Failed}, nil
}

// Failed lists the versions that failed here (for the node's record).
func (m *Manager) Failed() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.failed)
}

// Run gates a trial, then checks the channel every cfg.Every until ctx
// ends (nil) or a switch is due (*Switch).
func (m *Manager) Run(ctx context.Context, host Host) error {
	if m.trial {
		m.busy.Store(true)
		err := m.gate(ctx, host.Healthy)
		m.busy.Store(false)
		if err != nil {
			return err
		}
	}
	m.host = host
	t := time.NewTicker(m.cfg.Every)
	defer t.Stop()
	for {
		if sw := m.check(ctx); sw != nil {
			return sw
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// gate waits for healthy within cfg.Gate: then the trial becomes the
// current version; else it fails and the previous one is exec'd.
func (m *Manager) gate(ctx context.Context, healthy func() error) error {
	deadline := time.Now().Add(m.cfg.Gate)
	var last error
	for time.Now().Before(deadline) {
		if last = healthy(); last == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil // stopped on trial: the next start counts it failed (Boot)
		case <-time.After(200 * time.Millisecond):
		}
	}
	s, err := LoadState(m.cfg.Dir)
	if err != nil {
		return err
	}
	if s.Trying != m.cfg.Running {
		// The guard gave up on this process already.
		return &Switch{Binary: binaryOf(m.cfg.Dir, s, s.Current), Version: s.Current, Reason: "trial given up"}
	}
	if last == nil {
		took := time.Duration(time.Now().UnixMilli()-s.SwitchedAt) * time.Millisecond
		s.Previous, s.Current, s.Trying = s.Current, m.cfg.Running, ""
		if err := SaveState(m.cfg.Dir, s); err != nil {
			return err
		}
		m.log.Info("update_confirmed", "version", m.cfg.Running, "previous", s.Previous, "switch_to_healthy", took)
		return nil
	}
	s.fail(m.cfg.Running)
	s.Trying = ""
	if err := SaveState(m.cfg.Dir, s); err != nil {
		return err
	}
	m.setFailed(s.Failed)
	m.log.Error("update_gate_failed", "version", m.cfg.Running, "back_to", s.Current, "err", last)
	return &Switch{Binary: binaryOf(m.cfg.Dir, s, s.Current), Version: s.Current, Reason: fmt.Sprintf("%s failed its health gate: %v", m.cfg.Running, last)}
}

func (m *Manager) setFailed(f []string) {
	m.mu.Lock()
	m.failed = slices.Clone(f)
	m.mu.Unlock()
}

// check looks for a newer release of the channel: installs, preflights
// and returns the switch to it, or nil (logging why not).
func (m *Manager) check(ctx context.Context) (sw *Switch) {
	channel := m.cfg.Channel
	if m.host != nil {
		ch, err := m.host.FarmChannel(ctx)
		switch {
		case err != nil:
			m.log.Warn("update_farm_channel_unknown", "err", err, "channel", channel)
		case ch != "" && release.ValidName(ch):
			channel = ch
		}
	}
	c, err := release.Refresh(release.ClientConfig{Hub: m.cfg.Hub, Root: m.cfg.Root, Dir: filepath.Join(m.cfg.Dir, "tuf")})
	if err != nil {
		m.log.Warn("update_check_refused", "err", err)
		return nil
	}
	s, err := LoadState(m.cfg.Dir)
	if err != nil {
		m.log.Warn("update_state", "err", err)
		return nil
	}
	// The newest release over the running one that did not fail here
	// and whose rollout takes this node.
	var rel release.Release
	rs := c.Releases(channel)
	for i := len(rs) - 1; i >= 0; i-- {
		if release.CompareVersions(rs[i].Version, m.cfg.Running) <= 0 {
			break
		}
		if slices.Contains(s.Failed, rs[i].Version) {
			m.log.Info("update_skipped_failed", "version", rs[i].Version)
			continue
		}
		if m.host != nil && !rs[i].Rollout.Admits(m.host.FarmID(), m.host.NodeID(), rs[i].Version) {
			m.log.Info("update_not_rolled_out_here", "version", rs[i].Version, "paused", rs[i].Rollout.Paused)
			continue
		}
		rel = rs[i]
		break
	}
	if rel.Version == "" {
		return nil
	}
	// Busy from the install to the switch (the process ends then).
	m.busy.Store(true)
	defer func() {
		if sw == nil {
			m.busy.Store(false)
		}
	}()
	start := time.Now()
	if err := install(m.cfg.Dir, c, rel); err != nil {
		m.log.Warn("update_install_failed", "version", rel.Version, "err", err)
		return nil
	}
	bin := Binary(m.cfg.Dir, rel.Version)
	if err := m.preflight(ctx, bin, rel.Version); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.fail(rel.Version)
		if err := SaveState(m.cfg.Dir, s); err != nil {
			m.log.Warn("update_state", "err", err)
		}
		m.setFailed(s.Failed)
		m.log.Error("update_preflight_failed", "version", rel.Version, "err", err)
		return nil
	}
	s.Trying = rel.Version
	s.SwitchedAt = time.Now().UnixMilli()
	if err := SaveState(m.cfg.Dir, s); err != nil {
		m.log.Warn("update_state", "err", err)
		return nil
	}
	m.log.Info("update_switching", "version", rel.Version, "from", m.cfg.Running, "installed_in", time.Since(start).Round(time.Millisecond))
	return &Switch{Binary: bin, Version: rel.Version, Trial: rel.Version, Reason: "new release in " + channel}
}

// preflight runs `BIN version`: a zos that cannot say its version is not
// switched to.
func (m *Manager) preflight(ctx context.Context, bin, want string) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Preflight)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s version: %w: %s", bin, err, strings.TrimSpace(string(out)))
	}
	if got := strings.TrimSpace(string(out)); got != want {
		return fmt.Errorf("%s says version %q, its release %q", bin, got, want)
	}
	return nil
}
