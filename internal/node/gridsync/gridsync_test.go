package gridsync

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// owner is the twin of the deployment under test (contract 1).
const owner = 10

// cancelCase is contract 1 as a (possibly hostile) registry serves it,
// and whether the node may take the deployment down for it.
type cancelCase struct {
	name string
	c    registry.Contract
	want bool
}

// cancelCases returns the owner's key and contract 1 in every form.
func cancelCases(t *testing.T) (identity.Key, []cancelCase) {
	ok, other := newKey(t), newKey(t)
	cancel := func(id uint64) map[string]any { return map[string]any{"contract_id": id} }
	with := func(f func(c *registry.Contract)) registry.Contract {
		c := registry.Contract{ID: 1, TwinID: owner, NodeID: 1, Type: registry.TypeNode, DeploymentHash: "h", State: registry.StateCanceled}
		f(&c)
		return c
	}
	return ok, []cancelCase{
		{"owner signed the cancel", with(func(c *registry.Contract) { c.Proof = proof(t, ok, registry.OpContractCancel, cancel(1)) }), true},
		{"no proof", with(func(*registry.Contract) {}), false},
		{"canceled over the create proof", with(func(c *registry.Contract) {
			c.Proof = proof(t, ok, registry.OpContractCreate, map[string]any{"node_id": 1, "deployment_hash": "h", "public_ips": 0})
		}), false},
		{"canceled over an update proof", with(func(c *registry.Contract) {
			c.Proof = proof(t, ok, registry.OpContractUpdate, map[string]any{"contract_id": 1, "deployment_hash": "h"})
		}), false},
		{"cancel signed by another key", with(func(c *registry.Contract) { c.Proof = proof(t, other, registry.OpContractCancel, cancel(1)) }), false},
		{"owner's cancel of another contract", with(func(c *registry.Contract) { c.Proof = proof(t, ok, registry.OpContractCancel, cancel(2)) }), false},
		{"signed cancel, record still created", with(func(c *registry.Contract) {
			c.State = registry.StateCreated
			c.Proof = proof(t, ok, registry.OpContractCancel, cancel(1))
		}), false},
		{"tampered signature", with(func(c *registry.Contract) {
			c.Proof = proof(t, ok, registry.OpContractCancel, cancel(1))
			c.Proof.Signature = strings.Repeat("0", len(c.Proof.Signature))
		}), false},
	}
}

// TestEventDeprovisionsOnlyWithCancelProof sends a cancel event for each
// form of contract 1: only the owner's signed cancellation removes it.
func TestEventDeprovisionsOnlyWithCancelProof(t *testing.T) {
	key, cases := cancelCases(t)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry()
			reg.keys[owner] = key.Public()
			reg.events = make(chan registry.Event, 1)
			c := tt.c
			reg.events <- registry.Event{Seq: 5, Kind: registry.EventContractCanceled, NodeID: 1, Contract: &c}
			close(reg.events)
			deps := &fakeDeployments{deps: map[uint64]*gridtypes.Deployment{1: running(owner, 1)}}
			var logs testutil.Buffer
			seq := filepath.Join(t.TempDir(), "events.seq")
			s := New(Config{NodeID: 1, SeqFile: seq}, reg, deps, &fakeHost{}, logTo(&logs))

			err := s.EventsLoop(context.Background())
			if err == nil || !strings.Contains(err.Error(), "event stream closed") {
				t.Fatalf("got %v, want the stream's end", err)
			}
			var want []string
			if tt.want {
				want = []string{"10/1"}
			}
			if got := deps.removedLines(); !reflect.DeepEqual(got, want) {
				t.Fatalf("got deprovisioned %v, want %v", got, want)
			}
			if rejected := strings.Contains(logs.String(), "cancel_event_rejected"); rejected == tt.want {
				t.Errorf("got rejection logged %v, want %v:\n%s", rejected, !tt.want, logs.String())
			}
			if b, _ := os.ReadFile(seq); string(b) != "5" {
				t.Errorf("got sequence file %q, want 5 (the event is handled either way)", b)
			}
		})
	}
}

// TestEventsResumeAfterLastSequence restarts the loop: it asks for the
// events after the one it handled last.
func TestEventsResumeAfterLastSequence(t *testing.T) {
	reg := newFakeRegistry()
	reg.events = make(chan registry.Event)
	close(reg.events)
	seq := filepath.Join(t.TempDir(), "events.seq")
	if err := os.WriteFile(seq, []byte("41\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := New(Config{NodeID: 1, SeqFile: seq}, reg, &fakeDeployments{}, &fakeHost{}, logTo(&testutil.Buffer{}))
	_ = s.EventsLoop(context.Background())
	if want := []uint64{41}; !reflect.DeepEqual(reg.watchedAt, want) {
		t.Fatalf("got watches after %v, want %v", reg.watchedAt, want)
	}
}

// TestResyncEventComparesWithRegistry: events lost from the stream make
// the loop compare with the registry, with the same proofs required.
func TestResyncEventComparesWithRegistry(t *testing.T) {
	key, cases := cancelCases(t)
	reg := newFakeRegistry()
	reg.keys[owner] = key.Public()
	reg.contracts[1] = cases[0].c // signed cancel
	reg.events = make(chan registry.Event, 1)
	reg.events <- registry.Event{Seq: 9, Kind: registry.EventResync, NodeID: 1}
	close(reg.events)
	deps := &fakeDeployments{deps: map[uint64]*gridtypes.Deployment{1: running(owner, 1)}}
	s := New(Config{NodeID: 1, SeqFile: filepath.Join(t.TempDir(), "seq")}, reg, deps, &fakeHost{}, logTo(&testutil.Buffer{}))
	_ = s.EventsLoop(context.Background())
	if got, want := deps.removedLines(), []string{"10/1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got deprovisioned %v, want %v", got, want)
	}
}

// TestResyncNeverRemovesWithoutProof serves contract 1 (not among the
// active ones) in each form: resync removes the deployment only for the
// owner's signed cancellation.
func TestResyncNeverRemovesWithoutProof(t *testing.T) {
	key, cases := cancelCases(t)
	other := newKey(t)
	cases = append(cases,
		cancelCase{"registry lost the contract", registry.Contract{}, false},
		cancelCase{"another twin's signed cancel of this id", registry.Contract{
			ID: 1, TwinID: 30, State: registry.StateCanceled,
			Proof: proof(t, other, registry.OpContractCancel, map[string]any{"contract_id": 1}),
		}, false},
	)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			reg := newFakeRegistry()
			reg.keys[owner] = key.Public()
			reg.keys[30] = other.Public()
			if tt.c.ID != 0 {
				reg.contracts[1] = tt.c
			}
			// Contract 2 is active; contract 3 is not but its deployment
			// no longer runs: neither is touched.
			reg.active = []registry.Contract{{ID: 2, TwinID: owner, State: registry.StateCreated}}
			stopped := running(owner, 3)
			stopped.Workloads[0].Result.State = gridtypes.StateDeleted
			deps := &fakeDeployments{deps: map[uint64]*gridtypes.Deployment{1: running(owner, 1), 2: running(owner, 2), 3: stopped}}
			var logs testutil.Buffer
			s := New(Config{NodeID: 1}, reg, deps, &fakeHost{}, logTo(&logs))

			if err := s.Resync(context.Background()); err != nil {
				t.Fatal(err)
			}
			var want []string
			if tt.want {
				want = []string{"10/1"}
			}
			if got := deps.removedLines(); !reflect.DeepEqual(got, want) {
				t.Fatalf("got deprovisioned %v, want %v", got, want)
			}
			kept := strings.Contains(logs.String(), "resync_kept_deployment")
			if wantKept := !tt.want && tt.c.State != registry.StateCreated; kept != wantKept {
				t.Errorf("got kept logged %v, want %v:\n%s", kept, wantKept, logs.String())
			}
		})
	}
}

// TestResyncLoopEveryInterval: now, then once per ResyncEvery.
func TestResyncLoopEveryInterval(t *testing.T) {
	reg := newFakeRegistry()
	clk := newClock()
	s := New(Config{NodeID: 1, ResyncEvery: time.Hour, After: clk.After}, reg, &fakeDeployments{}, &fakeHost{}, logTo(&testutil.Buffer{}))
	runLoop(t, s.ResyncLoop)
	clk.tick <- time.Now() // the first round ran: the loop waits
	clk.tick <- time.Now()
	clk.mu.Lock()
	defer clk.mu.Unlock()
	if len(clk.waits) < 2 || clk.waits[0] != time.Hour {
		t.Fatalf("got waits %v, want hours", clk.waits)
	}
}

// TestUsedReportsCoalesced marks a burst of contracts: the registry gets
// one report with all of them; a gone deployment reports nothing used.
func TestUsedReportsCoalesced(t *testing.T) {
	reg := newFakeRegistry()
	deps := &fakeDeployments{deps: map[uint64]*gridtypes.Deployment{}}
	for c := uint64(1); c <= 10; c++ {
		deps.deps[c] = running(owner, c)
	}
	clk := newClock()
	s := New(Config{NodeID: 1, After: clk.After}, reg, deps, &fakeHost{}, logTo(&testutil.Buffer{}))
	runLoop(t, s.UsedLoop)
	for c := uint64(1); c <= 11; c++ { // 11 has no deployment (deleted)
		s.MarkUsed(owner, c)
	}
	clk.tick <- time.Now()
	eventually(t, "a used report", func() bool { reg.mu.Lock(); defer reg.mu.Unlock(); return len(reg.used) > 0 })

	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.used) != 1 || len(reg.used[0]) != 11 {
		t.Fatalf("got reports %v, want one with 11 contracts", reg.used)
	}
	if got := reg.used[0][11]; got != (registry.Resources{}) {
		t.Errorf("got %+v for the deleted contract, want nothing used", got)
	}
}

// TestUsedKeptAfterFailedReport: a failed report ends the loop (the node
// restarts it) and the restarted loop reports the same contracts.
func TestUsedKeptAfterFailedReport(t *testing.T) {
	reg := newFakeRegistry()
	reg.usedErr = errDown
	deps := &fakeDeployments{deps: map[uint64]*gridtypes.Deployment{1: running(owner, 1)}}
	clk := newClock()
	s := New(Config{NodeID: 1, After: clk.After}, reg, deps, &fakeHost{}, logTo(&testutil.Buffer{}))
	s.MarkUsed(owner, 1)
	errc := runLoop(t, s.UsedLoop)
	clk.tick <- time.Now()
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "registry down") {
		t.Fatalf("got %v, want the report's error", err)
	}
	reg.mu.Lock()
	reg.usedErr = nil
	reg.mu.Unlock()
	runLoop(t, s.UsedLoop) // the restart
	clk.tick <- time.Now()
	eventually(t, "the report again", func() bool { reg.mu.Lock(); defer reg.mu.Unlock(); return len(reg.used) == 1 })
	if _, ok := reg.used[0][1]; !ok {
		t.Fatalf("got %v, want contract 1 reported", reg.used)
	}
}

// TestUptimeReports: registration and a report now, then once per tick.
func TestUptimeReports(t *testing.T) {
	reg := newFakeRegistry()
	host := &fakeHost{}
	clk := newClock()
	s := New(Config{NodeID: 1, UptimeEvery: 40 * time.Minute, After: clk.After}, reg, &fakeDeployments{}, host, logTo(&testutil.Buffer{}))
	runLoop(t, s.UptimeLoop)
	clk.tick <- time.Now() // round 1 done
	clk.tick <- time.Now() // round 2 done
	eventually(t, "two reports", func() bool { reg.mu.Lock(); defer reg.mu.Unlock(); return len(reg.uptimes) >= 2 })
	reg.mu.Lock()
	got := append([]uint64(nil), reg.uptimes...)
	reg.mu.Unlock()
	if got[0] != 90 || len(got) > 3 {
		t.Fatalf("got uptimes %v, want 90 once per round", got)
	}
	host.mu.Lock()
	defer host.mu.Unlock()
	if host.registered < 2 {
		t.Errorf("got %d registrations, want one per round", host.registered)
	}
	clk.mu.Lock()
	defer clk.mu.Unlock()
	if clk.waits[0] != 40*time.Minute {
		t.Errorf("got wait %v, want UptimeEvery", clk.waits[0])
	}
}

// TestUptimeRegisterFails: a failed registration is the loop's error
// and nothing is reported.
func TestUptimeRegisterFails(t *testing.T) {
	reg := newFakeRegistry()
	s := New(Config{NodeID: 1, UptimeEvery: time.Hour}, reg, &fakeDeployments{}, &fakeHost{registerErr: errDown}, logTo(&testutil.Buffer{}))
	if err := s.UptimeLoop(context.Background()); err == nil {
		t.Fatal("got nil, want the registration's error")
	}
	if len(reg.uptimes) != 0 {
		t.Fatalf("got uptimes %v, want none", reg.uptimes)
	}
}
