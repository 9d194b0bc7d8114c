// Package gridsync keeps a registered node in step with the grid's
// registry: it reports the node's uptime and the capacity its contracts
// use, follows the node's contract events and compares its deployments
// with the registry's active contracts. Only a cancellation the contract's
// owner signed takes a deployment down: the registry alone cannot.
// internal/node/node wires it; the loops return their errors and the node
// restarts them.
package gridsync

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/registry"
)

// Reporter is what the report loops need of the registry.
type Reporter interface {
	ReportUptime(ctx context.Context, node uint32, uptime uint64) error
	ReportUsed(ctx context.Context, node uint32, used map[uint64]registry.Resources) error
}

// Contracts is what the cancel loops need of the registry: the node's
// events, its active contracts, one contract, and the owners' keys that
// check the proofs.
type Contracts interface {
	WatchNode(ctx context.Context, node uint32, afterSeq uint64) (<-chan registry.Event, error)
	ActiveNodeContracts(ctx context.Context, node uint32) ([]registry.Contract, error)
	Contract(ctx context.Context, id uint64) (registry.Contract, error)
	TwinKey(ctx context.Context, twin uint32) (ed25519.PublicKey, error)
}

// Registry is the registry client (registry.Client).
type Registry interface {
	Reporter
	Contracts
}

// Deployments is what the loops need of the node's deployments: the
// provision store's reads and the engine's deprovisioning.
type Deployments interface {
	Get(twin uint32, contract uint64) (*gridtypes.Deployment, error)
	All() ([]*gridtypes.Deployment, error)
	Deprovision(twin uint32, contract uint64, reason string) error
	// ApplyContractState pauses, resumes or removes a contract's
	// workloads as the grid's verified billing state says.
	ApplyContractState(c billing.StateChange) error
}

// Host is what the uptime loop needs of the node: registering again (its
// capacity may have changed) and its uptime.
type Host interface {
	Register(ctx context.Context) error
	Uptime() (time.Duration, error)
}

// Config of the loops.
type Config struct {
	// NodeID is the registered node's id.
	NodeID uint32
	// UptimeEvery is how often uptime is reported; ResyncEvery how often
	// deployments are compared with the registry.
	UptimeEvery, ResyncEvery time.Duration
	// UsedDelay gathers the used-capacity changes of a burst of jobs into
	// one report (500 ms when 0).
	UsedDelay time.Duration
	// SeqFile keeps the sequence of the last event handled.
	SeqFile string
	// After is the clock (time.After when nil; tests drive it).
	After func(time.Duration) <-chan time.Time
	// GridKey is the grid's billing key the operator pinned (nil: the one
	// kept in GridKeyFile, else learned once from GridKeys).
	GridKey ed25519.PublicKey
	// GridKeyFile keeps the billing key the node trusts.
	GridKeyFile string
	// GridKeys tells the grid's billing key when none is pinned or kept
	// (nil: state changes wait for a pinned key).
	GridKeys GridKeys
	// Power, when set, follows the node's power target and sends the
	// wake-on-LAN packets the grid asks for (power.go).
	Power *Power
}

// Sync runs the loops of one node.
type Sync struct {
	cfg  Config
	reg  Registry
	deps Deployments
	host Host
	log  *slog.Logger

	mu    sync.Mutex        // guards dirty
	dirty map[uint64]uint32 // contract -> twin, use to report
	wake  chan struct{}     // a contract was marked

	keyMu sync.Mutex        // guards key
	key   ed25519.PublicKey // the grid's billing key, once known
}

// New returns the loops of the node cfg.NodeID; none runs until called.
func New(cfg Config, reg Registry, deps Deployments, host Host, log *slog.Logger) *Sync {
	if cfg.UsedDelay <= 0 {
		cfg.UsedDelay = 500 * time.Millisecond
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	return &Sync{cfg: cfg, reg: reg, deps: deps, host: host, log: log, wake: make(chan struct{}, 1)}
}

// every runs f now and then every d until ctx ends or f fails.
func (s *Sync) every(ctx context.Context, d time.Duration, f func(context.Context) error) error {
	for {
		if err := f(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.cfg.After(d):
		}
	}
}
