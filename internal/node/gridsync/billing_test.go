package gridsync

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// volumes is a provision manager of volumes that only records them.
type volumes struct{}

func (volumes) Provision(context.Context, *provision.Workload) (any, error) {
	return map[string]string{"path": "/v"}, nil
}
func (volumes) Deprovision(context.Context, *provision.Workload) error { return nil }

// engineDeps is a real provision engine on a store in the test's
// directory, for the loops: the node's own ordering of state changes.
type engineDeps struct {
	*provision.Store
	*provision.Engine
}

func newEngineDeps(t *testing.T) engineDeps {
	st, err := provision.OpenStore(filepath.Join(t.TempDir(), "store.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	eng := provision.NewEngine(provision.Config{}, st, map[gridtypes.WorkloadType]provision.Manager{gridtypes.VolumeType: volumes{}},
		fixedRes{}, testutil.Logger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("engine: %v", err)
		}
		st.Close()
	})
	d := &gridtypes.Deployment{TwinID: owner, ContractID: 1, Workloads: []gridtypes.Workload{
		{Name: "vol", Type: gridtypes.VolumeType, Data: json.RawMessage(`{"size":1024}`)},
	}}
	if err := eng.Provision(d); err != nil {
		t.Fatal(err)
	}
	deps := engineDeps{st, eng}
	deps.waitState(t, gridtypes.StateOk)
	return deps
}

// Get is the store's (the engine has one too).
func (d engineDeps) Get(twin uint32, contract uint64) (*gridtypes.Deployment, error) {
	return d.Store.Get(twin, contract)
}

func (d engineDeps) waitState(t *testing.T, want gridtypes.ResultState) {
	t.Helper()
	var got gridtypes.ResultState
	testutil.Eventually(t, 5*time.Second, "vol to be "+string(want), func() (bool, error) {
		dep, err := d.Store.Get(owner, 1)
		if err != nil {
			return false, err
		}
		jobs, err := d.Store.Jobs()
		got = dep.Workloads[0].Result.State
		return err == nil && len(jobs) == 0 && got == want, nil
	})
}

type fixedRes struct{}

func (fixedRes) Total() gridtypes.Capacity {
	return gridtypes.Capacity{CRU: 4, MRU: 8 * gridtypes.Gigabyte, SRU: 100 * gridtypes.Gigabyte}
}
func (fixedRes) Reserved() gridtypes.Capacity { return gridtypes.Capacity{} }

func signed(t *testing.T, key ed25519.PrivateKey, node uint32, state string, seq uint64) *billing.StateChange {
	t.Helper()
	c, err := billing.Sign(billing.StateChange{ContractID: 1, NodeID: node, TwinID: owner, State: state, Seq: seq, At: 1700000000 + int64(seq)}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// runEvents runs the events loop over evs until the stream ends.
func runEvents(t *testing.T, s *Sync, reg *fakeRegistry, evs ...*billing.StateChange) {
	t.Helper()
	reg.events = make(chan registry.Event, len(evs))
	for i, c := range evs {
		reg.events <- registry.Event{Seq: uint64(i + 1), Kind: registry.EventContractState, NodeID: 1, State: c}
	}
	close(reg.events)
	if err := s.EventsLoop(context.Background()); err == nil || !strings.Contains(err.Error(), "event stream closed") {
		t.Fatalf("got %v, want the stream's end", err)
	}
}

// TestContractStateEvents: only changes the grid's billing key signed for
// this node act, in their order; forged, tampered, foreign and replayed
// ones are logged and change nothing.
func TestContractStateEvents(t *testing.T) {
	_, grid, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	deps := newEngineDeps(t)
	reg := newFakeRegistry()
	var logs testutil.Buffer
	s := New(Config{NodeID: 1, SeqFile: filepath.Join(t.TempDir(), "seq"), GridKey: grid.Public().(ed25519.PublicKey)},
		reg, deps, &fakeHost{}, logTo(&logs))

	tampered := signed(t, grid, 1, billing.StateGrace, 2)
	tampered.State = billing.StateOutOfFunds
	runEvents(t, s, reg,
		signed(t, grid, 1, billing.StateGrace, 1),       // verified: paused
		signed(t, other, 1, billing.StateOutOfFunds, 2), // forged
		tampered, // altered after signing
		signed(t, grid, 2, billing.StateOutOfFunds, 3), // the grid's, for another node
	)
	deps.waitState(t, gridtypes.StatePaused)
	if n := strings.Count(logs.String(), "contract_state_rejected"); n != 3 {
		t.Fatalf("got %d rejections logged, want 3:\n%s", n, logs.String())
	}

	runEvents(t, s, reg,
		signed(t, grid, 1, billing.StateActive, 2), // verified: resumed
		signed(t, grid, 1, billing.StateGrace, 1),  // replayed older change
	)
	// The replay was refused before the loop ended, queueing nothing: the
	// workload runs once the resume's job is done.
	deps.waitState(t, gridtypes.StateOk)
	if n := strings.Count(logs.String(), "contract_state_stale"); n != 1 {
		t.Fatalf("got %d stale changes logged, want 1:\n%s", n, logs.String())
	}
}

// fakeGridKeys answers one key and counts the questions.
type fakeGridKeys struct {
	mu  sync.Mutex // guards n
	key ed25519.PublicKey
	n   int
}

func (f *fakeGridKeys) GridKey(context.Context) (ed25519.PublicKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if f.key == nil {
		return nil, errDown
	}
	return f.key, nil
}

// TestGridKey: a pinned key is kept in the data dir, a learned one is
// asked once and never replaced by what the grid says later.
func TestGridKey(t *testing.T) {
	pub := func() ed25519.PublicKey { p, _, _ := ed25519.GenerateKey(nil); return p }
	a, b := pub(), pub()
	tests := []struct {
		name    string
		pinned  ed25519.PublicKey
		file    string // content of the key file before ("" none)
		asks    ed25519.PublicKey
		want    ed25519.PublicKey
		wantErr error
		asked   int
	}{
		{name: "pinned, kept", pinned: a, want: a},
		{name: "kept, not asked again", file: hex.EncodeToString(a), asks: b, want: a},
		{name: "learned once", asks: a, want: a, asked: 1},
		{name: "pinned over a kept key", pinned: b, file: hex.EncodeToString(a), want: b},
		{name: "none", wantErr: ErrNoGridKey},
		{name: "grid down", asks: nil, want: nil, asked: 1},
		{name: "corrupt file", file: "zz", asks: a},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "grid.key")
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var keys GridKeys
			fk := &fakeGridKeys{key: tt.asks}
			if tt.asks != nil || tt.asked > 0 {
				keys = fk
			}
			s := New(Config{NodeID: 1, GridKey: tt.pinned, GridKeyFile: path, GridKeys: keys}, newFakeRegistry(), &fakeDeployments{}, &fakeHost{}, logTo(&testutil.Buffer{}))
			got, err := s.gridKey(context.Background())
			if fk.n != tt.asked {
				t.Errorf("got %d questions to the grid, want %d", fk.n, tt.asked)
			}
			if tt.want == nil {
				if err == nil {
					t.Fatalf("got key %x, want an error", got)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tt.want) {
				t.Fatalf("got %x, %v, want %x", got, err, tt.want)
			}
			kept, err := os.ReadFile(path)
			if err != nil || strings.TrimSpace(string(kept)) != hex.EncodeToString(tt.want) {
				t.Fatalf("got kept %q, %v, want %x", kept, err, tt.want)
			}
			// A later answer of the grid never replaces the kept key.
			s2 := New(Config{NodeID: 1, GridKeyFile: path, GridKeys: &fakeGridKeys{key: pub()}}, newFakeRegistry(), &fakeDeployments{}, &fakeHost{}, logTo(&testutil.Buffer{}))
			if got2, err := s2.gridKey(context.Background()); err != nil || !got2.Equal(tt.want) {
				t.Fatalf("after a restart: got %x, %v, want the kept %x", got2, err, tt.want)
			}
		})
	}
}

// TestContractStateWithoutKey: without a billing key to check them, state
// changes are logged and ignored and the events after them go on; a grid
// that cannot say its key makes the loop stop before the event, to handle
// it again.
func TestContractStateWithoutKey(t *testing.T) {
	_, grid, _ := ed25519.GenerateKey(nil)
	deps := newEngineDeps(t)
	reg := newFakeRegistry()
	var logs testutil.Buffer
	seq := filepath.Join(t.TempDir(), "seq")
	s := New(Config{NodeID: 1, SeqFile: seq}, reg, deps, &fakeHost{}, logTo(&logs))
	runEvents(t, s, reg, signed(t, grid, 1, billing.StateGrace, 1))
	deps.waitState(t, gridtypes.StateOk)
	if !strings.Contains(logs.String(), "contract_state_unverifiable") {
		t.Fatalf("got no unverifiable change logged:\n%s", logs.String())
	}
	if b, _ := os.ReadFile(seq); string(b) != "1" {
		t.Fatalf("got sequence file %q, want 1 (handled)", b)
	}

	seq2 := filepath.Join(t.TempDir(), "seq")
	s = New(Config{NodeID: 1, SeqFile: seq2, GridKeyFile: filepath.Join(t.TempDir(), "key"), GridKeys: &fakeGridKeys{}}, reg, deps, &fakeHost{}, logTo(&logs))
	reg.events = make(chan registry.Event, 1)
	reg.events <- registry.Event{Seq: 1, Kind: registry.EventContractState, NodeID: 1, State: signed(t, grid, 1, billing.StateGrace, 1)}
	close(reg.events)
	if err := s.EventsLoop(context.Background()); !errors.Is(err, errDown) {
		t.Fatalf("grid cannot say its key: got %v, want errDown", err)
	}
	if _, err := os.Stat(seq2); !os.IsNotExist(err) {
		t.Fatalf("the event was marked handled: %v", err)
	}
}
