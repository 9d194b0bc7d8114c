package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

const (
	mib = gridtypes.Megabyte
	gib = gridtypes.Gigabyte
)

// sizer is a manager that keeps the capacity each workload was given and
// updates it in place; like the zmount and volume managers it refuses to
// shrink. Update waits on block when set.
type sizer struct {
	mu      sync.Mutex
	has     map[gridtypes.WorkloadID]gridtypes.Capacity
	updates []string
	block   chan struct{}
}

func newSizer() *sizer { return &sizer{has: map[gridtypes.WorkloadID]gridtypes.Capacity{}} }

func (s *sizer) Provision(_ context.Context, wl *Workload) (any, error) {
	c, err := wl.Capacity()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.has[wl.ID]; !ok {
		s.has[wl.ID] = c
	}
	return map[string]string{"id": string(wl.ID)}, nil
}

func (s *sizer) Update(ctx context.Context, wl *Workload) (any, error) {
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := wl.Capacity()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if less(s.has[wl.ID], c) != (gridtypes.Capacity{}) {
		return nil, Unchanged(fmt.Errorf("%s cannot shrink", wl.Name))
	}
	s.has[wl.ID] = c
	s.updates = append(s.updates, wl.Name)
	return map[string]string{"id": string(wl.ID), "v": "2"}, nil
}

func (s *sizer) Deprovision(_ context.Context, wl *Workload) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.has, wl.ID)
	return nil
}

func (s *sizer) updated() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.updates...)
}

func (s *sizer) capacity(id gridtypes.WorkloadID) gridtypes.Capacity {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.has[id]
}

// sizerFixture runs an engine on a node of r whose storage and VM
// workloads go to a sizer.
func sizerFixture(t *testing.T, r res) (*fixture, *sizer) {
	s := newSizer()
	f := newFixtureOf(t, r, map[gridtypes.WorkloadType]Manager{
		gridtypes.ZDBType: s, gridtypes.VolumeType: s, gridtypes.ZMountType: s, gridtypes.ZMachineType: s,
	})
	return f, s
}

// next is the next version of d with workload name changed to data.
func next(d *gridtypes.Deployment, name, data string) *gridtypes.Deployment {
	nd := d.Clone()
	nd.Version++
	wl := nd.Get(name)
	wl.Version, wl.Data = nd.Version, json.RawMessage(data)
	return nd
}

// update sends nd as the engine's API does: through the update rules,
// except for types they never let change (a VM), which go straight to the
// engine as an in-place update.
func (f *fixture) update(old, nd *gridtypes.Deployment) error {
	f.t.Helper()
	ops, err := gridtypes.Upgrade(old, nd)
	if err != nil {
		ops = nil
		for i := range nd.Workloads {
			if nd.Workloads[i].Version == nd.Version {
				ops = append(ops, gridtypes.Op{Kind: gridtypes.OpUpdate, Workload: &nd.Workloads[i]})
			}
		}
	}
	return f.eng.Update(nd, ops)
}

func (f *fixture) used() gridtypes.Capacity {
	f.t.Helper()
	u, err := f.eng.Used()
	if err != nil {
		f.t.Fatal(err)
	}
	return u
}

func (f *fixture) deploy(d *gridtypes.Deployment) *gridtypes.Deployment {
	f.t.Helper()
	if err := f.eng.Provision(d); err != nil {
		f.t.Fatal(err)
	}
	return f.wait(d.TwinID, d.ContractID)
}

func vm(memory, size uint64) string {
	return fmt.Sprintf(`{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"size":%d,"compute_capacity":{"cpu":1,"memory":%d}}`, size, memory)
}

// The attack of issue 15, finding 1, for every workload type whose capacity
// an update changes: deploy something small, update it to far more than
// the node has. The update is refused at once with ErrNoCapacity naming
// the workload; nothing changes (stored deployment, history, queue, used
// capacity, the manager never asked); another tenant still gets the rest
// of the node.
func TestUpdateBeyondCapacity(t *testing.T) {
	small := res{total: gridtypes.Capacity{CRU: 4, MRU: 8 * gib, SRU: 64 * mib, HRU: 64 * mib}, sys: gridtypes.Capacity{MRU: 2 * gib}}
	big := res{total: gridtypes.Capacity{CRU: 4, MRU: 8 * gib, SRU: 100 * gib, HRU: 64 * mib}, sys: gridtypes.Capacity{MRU: 2 * gib}}
	for _, tt := range []struct {
		name     string
		node     res
		wl       string // name:type:data deployed first
		grown    string // its data in the update
		wantErr  string
		others   string // another tenant's workload taking the rest, deployed after
		wantUsed gridtypes.Capacity
	}{
		{"zdb to 1 TiB", small, `db:zdb:{"size":1048576,"mode":"user"}`, `{"size":1099511627776,"mode":"user"}`,
			"HDD needs 1099510579200 bytes, 66060288 free", `db:zdb:{"size":66060288,"mode":"user"}`, gridtypes.Capacity{HRU: 64 * mib}},
		{"zdb to 2^64-1", small, `db:zdb:{"size":1048576,"mode":"user"}`, `{"size":18446744073709551615,"mode":"user"}`,
			"HDD needs 18446744073708503039 bytes", `db:zdb:{"size":66060288,"mode":"user"}`, gridtypes.Capacity{HRU: 64 * mib}},
		{"volume to 1 TiB", small, `vol:volume:{"size":1048576}`, `{"size":1099511627776}`,
			"SSD needs", `vol:volume:{"size":66060288}`, gridtypes.Capacity{SRU: 64 * mib}},
		{"zmount to 2^64-1", small, `disk:zmount:{"size":1048576}`, `{"size":18446744073709551615}`,
			"SSD needs", `disk:zmount:{"size":66060288}`, gridtypes.Capacity{SRU: 64 * mib}},
		{"zmachine memory", big, "vm:zmachine:" + vm(1*gib, 0), vm(7*gib, 0),
			"memory needs 6442450944 bytes, 5368709120 free", "vm:zmachine:" + vm(5*gib, 0),
			gridtypes.Capacity{CRU: 2, MRU: 6 * gib, SRU: 1000 * mib}},
		{"zmachine rootfs", big, "vm:zmachine:" + vm(1*gib, 0), vm(1*gib, 200*gib),
			"SSD needs", "disk:zmount:{\"size\":" + fmt.Sprint(100*gib-500*mib) + "}",
			gridtypes.Capacity{CRU: 1, MRU: 1 * gib, SRU: 100 * gib}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, s := sizerFixture(t, tt.node)
			got := f.deploy(mkdep(1, tt.wl))
			name := got.Workloads[0].Name
			if st := states(got); st != name+"=ok" {
				t.Fatalf("deploying: %s", st)
			}
			before, _ := f.eng.store.Changes(1, 1)
			usedBefore := f.used()

			err := f.update(got, next(got, name, tt.grown))
			if !errors.Is(err, ErrNoCapacity) || !strings.Contains(err.Error(), fmt.Sprintf("workload %q", name)) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("update: got %v, want ErrNoCapacity naming workload %q and %q", err, name, tt.wantErr)
			}
			now, err := f.eng.store.Get(1, 1)
			if err != nil {
				t.Fatal(err)
			}
			wl := now.Get(name)
			if now.Version != 0 || wl.Version != 0 || wl.Result.State != gridtypes.StateOk || string(wl.Data) != string(got.Get(name).Data) {
				t.Errorf("stored after the refused update: version %d, %s v%d %s %s; want version 0 as deployed", now.Version, name, wl.Version, wl.Result.State, wl.Data)
			}
			if after, _ := f.eng.store.Changes(1, 1); len(after) != len(before) {
				t.Errorf("history: got %d records, want %d", len(after), len(before))
			}
			if jobs, _ := f.eng.store.Jobs(); len(jobs) != 0 {
				t.Errorf("queued jobs: %+v, want none", jobs)
			}
			if u := f.used(); u != usedBefore {
				t.Errorf("used: got %+v, want %+v", u, usedBefore)
			}
			if up := s.updated(); len(up) != 0 {
				t.Errorf("manager updated %v", up)
			}

			// Another tenant gets exactly what is left.
			other := mkdep(1, tt.others)
			other.TwinID = 2
			if st := states(f.deploy(other)); !strings.HasSuffix(st, "=ok") {
				t.Fatalf("another tenant after the refused update: %s", st)
			}
			u := f.used()
			if u != tt.wantUsed {
				t.Errorf("used: got %+v, want %+v", u, tt.wantUsed)
			}
			if total := tt.node.total; u.MRU+tt.node.sys.MRU > total.MRU || u.SRU > total.SRU || u.HRU > total.HRU {
				t.Errorf("used %+v exceeds the node %+v", u, total)
			}
			if c := s.capacity(now.WorkloadID(name)); c != usedBefore {
				t.Errorf("the manager holds %+v for %s, want %+v", c, name, usedBefore)
			}
		})
	}
}

// Sums near 2^64 saturate instead of wrapping around to something small,
// and a fit check never passes because a sum wrapped (issue 15, finding
// 11).
func TestCapacityArithmetic(t *testing.T) {
	const top = math.MaxUint64
	for _, tt := range []struct {
		name                   string
		need, used, sys, total uint64
		want                   bool
	}{
		{"fits", 10, 20, 5, 40, true},
		{"exactly full", 15, 20, 5, 40, true},
		{"one byte over", 16, 20, 5, 40, false},
		{"need 2^64-1 on an empty node", top, 0, 0, 64 * mib, false},
		{"need 2^64-1 next to 1 byte (wraps to 0)", top, 1, 0, 64 * mib, false},
		{"used+need wraps to 1 MiB", top - mib + 1, 2 * mib, 0, 64 * mib, false},
		{"sys+used wraps", 1, top, 2, 64 * mib, false},
		{"everything at the top", top, top, top, top, false},
		{"a node of 2^64-1 bytes holds 2^64-1", top, 0, 0, top, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := fits(tt.need, tt.used, tt.sys, tt.total); got != tt.want {
				t.Errorf("fits(%d, %d, %d, %d) = %v, want %v", tt.need, tt.used, tt.sys, tt.total, got, tt.want)
			}
			err := fit(gridtypes.Capacity{HRU: tt.need}, gridtypes.Capacity{HRU: tt.used}, gridtypes.Capacity{HRU: tt.sys}, gridtypes.Capacity{HRU: tt.total})
			if (err == nil) != tt.want || (err != nil && !errors.Is(err, ErrNoCapacity)) {
				t.Errorf("fit: got %v, want fits=%v", err, tt.want)
			}
		})
	}
	for _, tt := range []struct {
		name       string
		a, b, want uint64
		sub        uint64 // a-b, saturating at 0
	}{
		{"small", 1, 2, 3, 0},
		{"to the top", top - 1, 1, top, top - 2},
		{"over the top", top, 1, top, top - 1},
		{"far over", top, top, top, 0},
		{"half and half and one", 1 << 63, 1 << 63, top, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := gridtypes.Capacity{CRU: tt.a, MRU: tt.a, SRU: tt.a, HRU: tt.a, IPV4U: tt.a}, gridtypes.Capacity{CRU: tt.b, MRU: tt.b, SRU: tt.b, HRU: tt.b, IPV4U: tt.b}
			if got, want := sum(a, b), (gridtypes.Capacity{CRU: tt.want, MRU: tt.want, SRU: tt.want, HRU: tt.want, IPV4U: tt.want}); got != want {
				t.Errorf("sum: got %+v, want %+v", got, want)
			}
			if got, want := less(a, b), (gridtypes.Capacity{CRU: tt.sub, MRU: tt.sub, SRU: tt.sub, HRU: tt.sub, IPV4U: tt.sub}); got != want {
				t.Errorf("less: got %+v, want %+v", got, want)
			}
		})
	}
}

// A workload claiming 2^64-1 bytes on a node that already runs something
// is refused (the sum of used and need wrapped to less than the total
// before), and the node's used capacity stays below its total.
func TestProvisionNearTwoToThe64(t *testing.T) {
	f, _ := sizerFixture(t, res{total: gridtypes.Capacity{CRU: 4, MRU: 8 * gib, SRU: 64 * mib, HRU: 64 * mib}})
	f.deploy(mkdep(1, `db:zdb:{"size":1048576,"mode":"user"}`, `disk:zmount:{"size":1}`))
	for i, wl := range []string{
		`db:zdb:{"size":18446744073709551615,"mode":"user"}`,
		`db:zdb:{"size":18446744073708503040,"mode":"user"}`, // 2^64 - 1 MiB: 1 MiB used + this = 2^64
		`disk:zmount:{"size":18446744073709551615}`,
	} {
		d := f.deploy(mkdep(uint64(i+2), wl))
		if r := d.Workloads[0].Result; r.State != gridtypes.StateError || !strings.Contains(r.Error, "not enough capacity") {
			t.Errorf("%s: got %s %q, want refused for capacity", wl, r.State, r.Error)
		}
	}
	if u := f.used(); u.HRU != 1*mib || u.SRU != 1 {
		t.Errorf("used %+v, want the first deployment only", u)
	}
}

// While an accepted update runs, the workload holds its new capacity: the
// growth is not free for others between the update and its job.
func TestUpdateHoldsGrowth(t *testing.T) {
	f, s := sizerFixture(t, res{total: gridtypes.Capacity{CRU: 4, MRU: 8 * gib, SRU: 64 * mib, HRU: 64 * mib}})
	got := f.deploy(mkdep(1, `db:zdb:{"size":1048576,"mode":"user"}`))
	s.block = make(chan struct{})
	if err := f.update(got, next(got, "db", `{"size":50331648,"mode":"user"}`)); err != nil {
		t.Fatalf("growing to 48 MiB of 64: %v", err)
	}
	if u := f.used(); u.HRU != 48*mib {
		t.Errorf("used while the update runs: %d, want 48 MiB", u.HRU)
	}
	other := mkdep(1, `db:zdb:{"size":33554432,"mode":"user"}`)
	other.TwinID = 2
	if r := f.deploy(other).Workloads[0].Result; r.State != gridtypes.StateError || !strings.Contains(r.Error, "not enough capacity: HDD needs") {
		t.Errorf("32 MiB next to an update to 48 MiB: got %s %q, want refused", r.State, r.Error)
	}
	close(s.block)
	if st := states(f.wait(1, 1)); st != "db=ok" {
		t.Fatalf("after the update: %s", st)
	}
	if u := f.used(); u.HRU != 48*mib {
		t.Errorf("used after the update: %d, want 48 MiB", u.HRU)
	}
}

// An update the manager refuses (a shrink) leaves the workload unchanged
// and still holding what it held: the old configuration runs. Neither a
// later job nor a restart gives its capacity away.
func TestUnchangedKeepsHolding(t *testing.T) {
	f, s := sizerFixture(t, res{total: gridtypes.Capacity{CRU: 4, MRU: 8 * gib, SRU: 64 * mib, HRU: 64 * mib}})
	got := f.deploy(mkdep(1, `vol:volume:{"size":33554432}`, `db:zdb:{"size":1048576,"mode":"user"}`))
	if err := f.update(got, next(got, "vol", `{"size":1048576}`)); err != nil {
		t.Fatal(err)
	}
	got = f.wait(1, 1)
	if st := states(got); st != "vol=unchanged db=ok" {
		t.Fatalf("after a shrink: %s", st)
	}
	check := func(when string) {
		t.Helper()
		if u := f.used(); u.SRU != 32*mib {
			t.Errorf("%s: used SSD %d, want 32 MiB (the volume as it runs)", when, u.SRU)
		}
		other := mkdep(uint64(len(when)), `vol:volume:{"size":41943040}`)
		other.TwinID = 2
		if r := f.deploy(other).Workloads[0].Result; r.State != gridtypes.StateError {
			t.Errorf("%s: 40 MiB next to the unchanged 32 MiB volume: %s", when, r.State)
		}
	}
	check("after the refusal")
	// A later update of another workload re-installs nothing.
	if err := f.update(got, next(got, "db", `{"size":2097152,"mode":"user"}`)); err != nil {
		t.Fatal(err)
	}
	if st := states(f.wait(1, 1)); st != "vol=unchanged db=ok" {
		t.Fatalf("after the next update: %s", st)
	}
	check("after the next update")
	f.stop()
	f.start()
	if st := states(f.wait(1, 1)); st != "vol=unchanged db=ok" {
		t.Fatalf("after a restart: %s", st)
	}
	check("after a restart")
	if c := s.capacity(got.WorkloadID("vol")); c.SRU != 32*mib {
		t.Errorf("the volume is %d bytes, want 32 MiB", c.SRU)
	}
}

// What an update removes makes room for what it grows.
func TestUpdateRemovalMakesRoom(t *testing.T) {
	f, _ := sizerFixture(t, res{total: gridtypes.Capacity{CRU: 4, MRU: 8 * gib, SRU: 64 * mib, HRU: 64 * mib}})
	got := f.deploy(mkdep(1, `a:zdb:{"size":33554432,"mode":"user"}`, `b:zdb:{"size":33554432,"mode":"user"}`))
	nd := next(got, "b", `{"size":67108864,"mode":"user"}`)
	nd.Workloads = []gridtypes.Workload{*nd.Get("b")}
	if err := f.update(got, nd); err != nil {
		t.Fatalf("removing a and growing b into its room: %v", err)
	}
	got = f.wait(1, 1)
	if st := states(got); st != "b=ok" {
		t.Fatalf("after the update: %s", st)
	}
	if u := f.used(); u.HRU != 64*mib {
		t.Errorf("used %d, want 64 MiB", u.HRU)
	}
	// Full now: growing further is refused.
	if err := f.update(got, next(got, "b", `{"size":67108865,"mode":"user"}`)); !errors.Is(err, ErrNoCapacity) {
		t.Errorf("one byte more on a full node: got %v, want ErrNoCapacity", err)
	}
}
