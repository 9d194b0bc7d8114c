package provision

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/testutil"
)

// pauseRecorder is a recorder whose workloads can be paused: it records
// pause and resume as lines and keeps which workloads are paused, as a VM
// manager keeps a paused QEMU.
type pauseRecorder struct {
	*recorder
	paused map[gridtypes.WorkloadID]bool
}

func (p pauseRecorder) Pause(_ context.Context, wl *Workload) error {
	p.mu.Lock()
	if !p.exists[wl.ID] {
		p.mu.Unlock()
		return errors.New("no such workload")
	}
	was := p.paused[wl.ID]
	p.paused[wl.ID] = true
	p.mu.Unlock()
	if !was {
		p.log("pause " + string(wl.Type) + " " + wl.Name)
	}
	return nil
}

func (p pauseRecorder) Resume(_ context.Context, wl *Workload) error {
	p.mu.Lock()
	was := p.paused[wl.ID]
	delete(p.paused, wl.ID)
	p.mu.Unlock()
	if was {
		p.log("resume " + string(wl.Type) + " " + wl.Name)
	}
	return nil
}

func (f *fixture) takeLines() string {
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	s := strings.Join(f.lines, ",")
	f.lines = nil
	return s
}

func change(contract uint64, state string, seq uint64) billing.StateChange {
	return billing.StateChange{ContractID: contract, NodeID: 1, TwinID: 1, State: state, Seq: seq, At: 1700000000 + int64(seq)}
}

// TestPauseResumeOutOfFunds walks a contract through grace (paused, still
// holding its capacity, surviving a restart), back to active (resumed),
// into grace again and out of funds (removed, capacity free), with
// replayed and older changes ignored on the way.
func TestPauseResumeOutOfFunds(t *testing.T) {
	f := newFixture(t)
	pr := pauseRecorder{recorder: f.rec, paused: map[gridtypes.WorkloadID]bool{}}
	f.stop()
	f.mgrs = map[gridtypes.WorkloadType]Manager{gridtypes.ZMachineType: pr, gridtypes.ZDBType: pr}
	f.start()

	vm := `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":1073741824}}`
	d := mkdep(1, `disk:zmount:{"size":1024}`, "vm:zmachine:"+vm, `db:zdb:{"size":1,"mode":"user"}`)
	if err := f.eng.Provision(d); err != nil {
		t.Fatal(err)
	}
	if got, want := states(f.wait(1, 1)), "disk=ok vm=ok db=ok"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	used := f.used()
	f.takeLines()

	// Grace: the last installed is paused first; the zmount, which has
	// nothing to pause, is only marked.
	if err := f.eng.ApplyContractState(change(1, billing.StateGrace, 1)); err != nil {
		t.Fatal(err)
	}
	got := f.wait(1, 1)
	if s, want := states(got), "disk=paused vm=paused db=paused"; s != want {
		t.Fatalf("got %s, want %s", s, want)
	}
	if msg := got.Get("vm").Result.Error; msg != pausedMessage {
		t.Fatalf("got message %q, want %q", msg, pausedMessage)
	}
	if got.Get("vm").Result.Data == nil {
		t.Fatal("a paused workload lost its result data")
	}
	if s, want := f.takeLines(), "pause zdb db,pause zmachine vm"; s != want {
		t.Fatalf("got %q, want %q", s, want)
	}
	if u := f.used(); u != used {
		t.Fatalf("paused workloads hold %+v, want their capacity %+v", u, used)
	}

	// The same change again, or an older one, changes nothing.
	for _, c := range []billing.StateChange{change(1, billing.StateGrace, 1), change(1, billing.StateOutOfFunds, 1)} {
		if err := f.eng.ApplyContractState(c); !errors.Is(err, ErrStale) {
			t.Fatalf("replayed %s seq %d: got %v, want ErrStale", c.State, c.Seq, err)
		}
	}
	// An update of a paused contract is refused.
	nd := d.Clone()
	nd.Version = 1
	nd.Get("disk").Version, nd.Get("disk").Data = 1, []byte(`{"size":2048}`)
	if err := f.eng.Update(nd, []gridtypes.Op{{Kind: gridtypes.OpUpdate, Workload: nd.Get("disk")}}); !errors.Is(err, ErrGrace) {
		t.Fatalf("update in grace: got %v, want ErrGrace", err)
	}

	// A node restarted during grace (its VMs gone with it) rebuilds the
	// workloads and pauses them again.
	f.stop()
	f.rec.exists = map[gridtypes.WorkloadID]bool{}
	for k := range pr.paused {
		delete(pr.paused, k)
	}
	f.start()
	want := "create zmount disk,create zmachine vm,create zdb db,pause zdb db,pause zmachine vm"
	var lines string
	testutil.Eventually(t, 10*time.Second, "the restart to rebuild and pause", func() (bool, error) {
		f.rec.mu.Lock()
		lines = strings.Join(f.lines, ",")
		f.rec.mu.Unlock()
		return lines == want, nil
	})
	if s, want := states(f.wait(1, 1)), "disk=paused vm=paused db=paused"; s != want {
		t.Fatalf("after a restart: got %s, want %s", s, want)
	}
	f.takeLines()

	// Paid: resumed in install order.
	if err := f.eng.ApplyContractState(change(1, billing.StateActive, 2)); err != nil {
		t.Fatal(err)
	}
	if s, want := states(f.wait(1, 1)), "disk=ok vm=ok db=ok"; s != want {
		t.Fatalf("got %s, want %s", s, want)
	}
	if s, want := f.takeLines(), "resume zmachine vm,resume zdb db"; s != want {
		t.Fatalf("got %q, want %q", s, want)
	}
	if u := f.used(); u != used {
		t.Fatalf("resumed workloads hold %+v, want %+v", u, used)
	}

	// Grace again, then out of funds: removed, capacity free.
	if err := f.eng.ApplyContractState(change(1, billing.StateGrace, 3)); err != nil {
		t.Fatal(err)
	}
	f.wait(1, 1)
	if err := f.eng.ApplyContractState(change(1, billing.StateOutOfFunds, 4)); err != nil {
		t.Fatal(err)
	}
	got = f.wait(1, 1)
	for _, wl := range got.Workloads {
		if wl.Result.State != gridtypes.StateDeleted || wl.Result.Error != ReasonOutOfFunds {
			t.Fatalf("%s: got %s %q, want deleted %q", wl.Name, wl.Result.State, wl.Result.Error, ReasonOutOfFunds)
		}
	}
	if u := f.used(); !u.Zero() {
		t.Fatalf("after out of funds the contract holds %+v, want nothing", u)
	}
	if err := f.eng.ApplyContractState(change(1, billing.StateActive, 2)); !errors.Is(err, ErrStale) {
		t.Fatalf("an older active after out of funds: got %v, want ErrStale", err)
	}
}

// TestContractStateBadInput: an invalid change or one for a contract the
// node does not hold is refused and stores nothing.
func TestContractStateBadInput(t *testing.T) {
	f := newFixture(t)
	if err := f.eng.ApplyContractState(change(9, billing.StateGrace, 1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown contract: got %v, want ErrNotFound", err)
	}
	if err := f.eng.ApplyContractState(change(9, "free", 1)); !errors.Is(err, billing.ErrInvalid) {
		t.Fatalf("unknown state: got %v, want ErrInvalid", err)
	}
	if jobs, _ := f.eng.store.Jobs(); len(jobs) != 0 {
		t.Fatalf("got %d jobs queued, want none", len(jobs))
	}
}
