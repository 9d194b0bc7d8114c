// Package loadgen fills a registry with simulated nodes and contracts
// through the real client (real keys, signatures, farm tokens and NATS
// requests) and measures how long each write takes.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
)

// Config sizes a load.
type Config struct {
	// Nodes is how many simulated nodes are registered (each with its own
	// key and twin).
	Nodes int
	// Contracts is how many node contracts are created, spread over the
	// nodes round robin.
	Contracts int
	// NodesPerFarm is how many nodes share a farm (default 100).
	NodesPerFarm int
	// ContractsPerUser is how many contracts one user twin creates
	// (default 100).
	ContractsPerUser int
	// Workers is how many writes are in flight at once (default 16).
	Workers int
}

func (c Config) withDefaults() Config {
	if c.NodesPerFarm <= 0 {
		c.NodesPerFarm = 100
	}
	if c.ContractsPerUser <= 0 {
		c.ContractsPerUser = 100
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	return c
}

// Validate refuses a load that cannot be generated.
func (c Config) Validate() error {
	if c.Nodes < 1 {
		return fmt.Errorf("nodes %d: want at least 1", c.Nodes)
	}
	if c.Contracts < 0 {
		return fmt.Errorf("contracts %d: want 0 or more", c.Contracts)
	}
	return nil
}

// Latencies are the durations of one kind of write.
type Latencies []time.Duration

// Percentile is the p-th fraction (0..1) of l, 0 when l is empty. l must
// be sorted.
func (l Latencies) Percentile(p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(p*float64(len(l))))]
}

// Result is what a load did.
type Result struct {
	Farms, Users  int
	Nodes         []registry.Node
	NodeWrites    Latencies // twin creation and node registration, sorted
	ContractWrite Latencies // contract creation, sorted
	NodesTook     time.Duration
	ContractsTook time.Duration
	// StaleTwinReads counts writes refused with ErrNoTwin right after the
	// twin was created through another server, then retried: a read of
	// the twin index served by a replica that had not applied the twin
	// yet (the buckets allow direct gets from any replica).
	StaleTwinReads int64
}

// Rate is writes per second over took.
func Rate(n int, took time.Duration) float64 {
	if took <= 0 {
		return 0
	}
	return float64(n) / took.Seconds()
}

// Run registers cfg.Nodes nodes then creates cfg.Contracts contracts on
// the registry reachable through nc. The first error stops it.
func Run(ctx context.Context, cfg Config, nc *nats.Conn, log *slog.Logger) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	var res Result

	// Farms, one farmer each.
	farms := (cfg.Nodes + cfg.NodesPerFarm - 1) / cfg.NodesPerFarm
	type farm struct {
		id    uint32
		token string
	}
	fs := make([]farm, farms)
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(cfg.Workers)
	for i := range fs {
		eg.Go(func() error {
			c, err := newTwin(ectx, nc)
			if err != nil {
				return err
			}
			f, err := c.client.CreateFarm(ectx, fmt.Sprintf("loadgen-%d-%d", time.Now().UnixNano(), i))
			if err != nil {
				return fmt.Errorf("creating farm: %w", err)
			}
			tok, err := registry.NewFarmToken(c.key, f.ID, time.Now().Add(24*time.Hour))
			if err != nil {
				return fmt.Errorf("making farm token: %w", err)
			}
			fs[i] = farm{id: f.ID, token: tok.String()}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return res, err
	}
	res.Farms = farms

	// Nodes: a key and twin each, then the registration.
	countries := []string{"BE", "NL", "DE", "FR", "US", "EG", "IN", "BR"}
	res.Nodes = make([]registry.Node, cfg.Nodes)
	nodeLat := make([]time.Duration, cfg.Nodes)
	var done, stale atomic.Int64
	start := time.Now()
	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(cfg.Workers)
	for i := range cfg.Nodes {
		eg.Go(func() error {
			t0 := time.Now()
			c, err := newTwin(ectx, nc)
			if err != nil {
				return err
			}
			f := fs[i/cfg.NodesPerFarm]
			n, err := retryNoTwin(ectx, &stale, func() (registry.Node, error) {
				return c.client.RegisterNode(ectx, registry.NodeRegistration{
					FarmID: f.id, FarmToken: f.token,
					Total:    registry.Resources{CRU: uint64(4 << (i % 5)), MRU: uint64(8<<(i%6)) << 30, SRU: uint64(250<<(i%4)) << 30},
					Location: registry.Location{Country: countries[i%len(countries)]},
					Version:  "loadgen",
				})
			})
			if err != nil {
				return fmt.Errorf("registering node %d: %w", i, err)
			}
			nodeLat[i] = time.Since(t0)
			res.Nodes[i] = n
			if d := done.Add(1); d%10000 == 0 {
				log.Info("loadgen_nodes", "done", d, "of", cfg.Nodes, "took", time.Since(start).String())
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return res, err
	}
	res.NodesTook = time.Since(start)
	slices.Sort(nodeLat)
	res.NodeWrites = nodeLat

	// Contracts: users of ContractsPerUser contracts each, one worker
	// per user at a time so that a user's writes come in order.
	users := (cfg.Contracts + cfg.ContractsPerUser - 1) / cfg.ContractsPerUser
	res.Users = users
	lat := make([]time.Duration, cfg.Contracts)
	done.Store(0)
	start = time.Now()
	eg, ectx = errgroup.WithContext(ctx)
	eg.SetLimit(cfg.Workers)
	for u := range users {
		eg.Go(func() error {
			c, err := newTwin(ectx, nc)
			if err != nil {
				return err
			}
			for k := u * cfg.ContractsPerUser; k < min(cfg.Contracts, (u+1)*cfg.ContractsPerUser); k++ {
				node := res.Nodes[k%len(res.Nodes)]
				t0 := time.Now()
				_, err := retryNoTwin(ectx, &stale, func() (registry.Contract, error) {
					return c.client.CreateNodeContract(ectx, node.ID, fmt.Sprintf("%016x", k), "", 0)
				})
				if err != nil {
					return fmt.Errorf("creating contract %d on node %d: %w", k, node.ID, err)
				}
				lat[k] = time.Since(t0)
				if d := done.Add(1); d%10000 == 0 {
					log.Info("loadgen_contracts", "done", d, "of", cfg.Contracts, "took", time.Since(start).String())
				}
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return res, err
	}
	res.ContractsTook = time.Since(start)
	slices.Sort(lat)
	res.ContractWrite = lat
	res.StaleTwinReads = stale.Load()
	return res, nil
}

type twin struct {
	key    identity.Key
	client *registry.Client
}

// newTwin makes a key and its twin.
func newTwin(ctx context.Context, nc *nats.Conn) (twin, error) {
	k, err := identity.Generate()
	if err != nil {
		return twin{}, fmt.Errorf("making key: %w", err)
	}
	c := registry.NewClient(nc, k)
	if _, err := c.CreateTwin(ctx, ""); err != nil {
		if errors.Is(err, context.Canceled) {
			return twin{}, err
		}
		return twin{}, fmt.Errorf("creating twin: %w", err)
	}
	return twin{key: k, client: c}, nil
}

// retryNoTwin runs f, again while it fails with ErrNoTwin (the signer's
// twin, just created, not yet visible where f was served), up to 50 times
// over about 2.5 s, counting the retries in stale.
func retryNoTwin[T any](ctx context.Context, stale *atomic.Int64, f func() (T, error)) (T, error) {
	for i := 0; ; i++ {
		v, err := f()
		if !errors.Is(err, registry.ErrNoTwin) || i == 50 {
			return v, err
		}
		stale.Add(1)
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
