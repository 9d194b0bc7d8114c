package gridsync

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// fakeRegistry is a registry in memory that records what the node sends.
type fakeRegistry struct {
	mu        sync.Mutex // guards every field below
	keys      map[uint32]ed25519.PublicKey
	contracts map[uint64]registry.Contract
	active    []registry.Contract
	events    chan registry.Event
	watchedAt []uint64
	uptimes   []uint64
	used      []map[uint64]registry.Resources
	usedErr   error
}

var _ Registry = (*fakeRegistry)(nil)

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{keys: map[uint32]ed25519.PublicKey{}, contracts: map[uint64]registry.Contract{}}
}

func (f *fakeRegistry) ReportUptime(_ context.Context, _ uint32, up uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uptimes = append(f.uptimes, up)
	return nil
}

func (f *fakeRegistry) ReportUsed(_ context.Context, _ uint32, used map[uint64]registry.Resources) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.usedErr != nil {
		return f.usedErr
	}
	f.used = append(f.used, used)
	return nil
}

func (f *fakeRegistry) WatchNode(_ context.Context, _ uint32, after uint64) (<-chan registry.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watchedAt = append(f.watchedAt, after)
	return f.events, nil
}

func (f *fakeRegistry) ActiveNodeContracts(context.Context, uint32) ([]registry.Contract, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active, nil
}

func (f *fakeRegistry) Contract(_ context.Context, id uint64) (registry.Contract, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.contracts[id]
	if !ok {
		return c, fmt.Errorf("contract %d: %w", id, registry.ErrNotFound)
	}
	return c, nil
}

func (f *fakeRegistry) TwinKey(_ context.Context, twin uint32) (ed25519.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k, ok := f.keys[twin]
	if !ok {
		return nil, fmt.Errorf("twin %d: %w", twin, registry.ErrNotFound)
	}
	return k, nil
}

// fakeDeployments is the provision store and engine: deployments by
// contract, and the deprovisions asked, as "twin/contract" lines.
type fakeDeployments struct {
	mu      sync.Mutex // guards deps, removed
	deps    map[uint64]*gridtypes.Deployment
	removed []string
}

var _ Deployments = (*fakeDeployments)(nil)

func (f *fakeDeployments) Get(twin uint32, contract uint64) (*gridtypes.Deployment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.deps[contract]
	if !ok || d.TwinID != twin {
		return nil, provision.ErrNotFound
	}
	return d, nil
}

func (f *fakeDeployments) All() ([]*gridtypes.Deployment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*gridtypes.Deployment
	for _, d := range f.deps {
		out = append(out, d)
	}
	return out, nil
}

func (f *fakeDeployments) Deprovision(twin uint32, contract uint64, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, fmt.Sprintf("%d/%d", twin, contract))
	sort.Strings(f.removed)
	return nil
}

func (f *fakeDeployments) ApplyContractState(c billing.StateChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, fmt.Sprintf("state %d/%d %s", c.TwinID, c.ContractID, c.State))
	return nil
}

func (f *fakeDeployments) removedLines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.removed...)
}

// fakeHost counts registrations.
type fakeHost struct {
	mu          sync.Mutex // guards registered
	registered  int
	registerErr error
}

func (h *fakeHost) Register(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.registered++
	return h.registerErr
}

func (h *fakeHost) Uptime() (time.Duration, error) { return 90 * time.Second, nil }

// running is a deployment of twin with one running workload.
func running(twin uint32, contract uint64) *gridtypes.Deployment {
	return &gridtypes.Deployment{TwinID: twin, ContractID: contract, Workloads: []gridtypes.Workload{
		{Name: "vol", Type: gridtypes.VolumeType, Result: gridtypes.Result{State: gridtypes.StateOk}},
	}}
}

// proof is what key signed: op with payload, as the registry keeps it.
func proof(t *testing.T, key identity.Key, op string, payload any) *registry.Proof {
	t.Helper()
	b, err := registry.SignRequest(key, op, payload, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var p registry.Proof
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

func newKey(t *testing.T) identity.Key {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// clock is a fake After: each wait is one value to send on tick.
type clock struct {
	tick  chan time.Time
	mu    sync.Mutex // guards waits
	waits []time.Duration
}

func newClock() *clock { return &clock{tick: make(chan time.Time)} }

func (c *clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	c.waits = append(c.waits, d)
	c.mu.Unlock()
	return c.tick
}

func logTo(b *testutil.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

// runLoop runs loop in the background until the test ends.
func runLoop(t *testing.T, loop func(context.Context) error) (errc <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan error, 1)
	done := make(chan struct{})
	go func() { defer close(done); c <- loop(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("loop did not stop")
		}
	})
	return c
}

// eventually polls cond for up to five seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, func() (bool, error) { return cond(), nil })
}

var errDown = errors.New("registry down")
