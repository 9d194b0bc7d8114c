package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/testutil"
)

// recorder is a manager that records calls as lines and can fail or block.
type recorder struct {
	mu     sync.Mutex
	lines  *[]string
	exists map[gridtypes.WorkloadID]bool
	fail   map[string]error // by workload name
	block  chan struct{}    // if set, Provision waits on it
	// waiting counts the Provision calls that wait on block now.
	waiting atomic.Int32
}

func (r *recorder) log(s string) {
	r.mu.Lock()
	*r.lines = append(*r.lines, s)
	r.mu.Unlock()
}

func (r *recorder) Provision(ctx context.Context, wl *Workload) (any, error) {
	if r.block != nil {
		r.waiting.Add(1)
		select {
		case <-r.block:
		case <-ctx.Done():
			r.waiting.Add(-1)
			return nil, ctx.Err()
		}
		r.waiting.Add(-1)
	}
	if err := r.fail[wl.Name]; err != nil {
		return nil, err
	}
	r.mu.Lock()
	existed := r.exists[wl.ID]
	r.exists[wl.ID] = true
	r.mu.Unlock()
	if !existed {
		r.log("create " + string(wl.Type) + " " + wl.Name)
	}
	return map[string]string{"id": string(wl.ID)}, nil
}

func (r *recorder) Deprovision(_ context.Context, wl *Workload) error {
	r.mu.Lock()
	delete(r.exists, wl.ID)
	r.mu.Unlock()
	r.log("delete " + string(wl.Type) + " " + wl.Name)
	return nil
}

type updRecorder struct{ *recorder }

func (u updRecorder) Update(_ context.Context, wl *Workload) (any, error) {
	if strings.Contains(string(wl.Data), `"mode":"seq"`) {
		return nil, Unchanged(fmt.Errorf("mode cannot change"))
	}
	u.log("update " + string(wl.Type) + " " + wl.Name)
	return map[string]string{"id": string(wl.ID), "v": "2"}, nil
}

type res struct{ total, sys gridtypes.Capacity }

func (r res) Total() gridtypes.Capacity    { return r.total }
func (r res) Reserved() gridtypes.Capacity { return r.sys }

type fixture struct {
	t      *testing.T
	path   string
	lines  []string
	rec    *recorder
	res    res
	mgrs   map[gridtypes.WorkloadType]Manager // replace the recorder for some types
	eng    *Engine
	cancel context.CancelFunc
	done   chan error
}

// defaultRes is a node of 4 cores, 8 GiB of memory (2 GiB kept by the
// system), 100 GiB of SSD and of HDD.
var defaultRes = res{
	total: gridtypes.Capacity{CRU: 4, MRU: 8 * gridtypes.Gigabyte, SRU: 100 * gridtypes.Gigabyte, HRU: 100 * gridtypes.Gigabyte},
	sys:   gridtypes.Capacity{MRU: 2 * gridtypes.Gigabyte},
}

func newFixture(t *testing.T) *fixture { return newFixtureOf(t, defaultRes, nil) }

// newFixtureOf is a fixture on a node of r, with mgrs in place of the
// recorder for their types.
func newFixtureOf(t *testing.T, r res, mgrs map[gridtypes.WorkloadType]Manager) *fixture {
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "store.bolt"), res: r, mgrs: mgrs}
	f.rec = &recorder{lines: &f.lines, exists: map[gridtypes.WorkloadID]bool{}, fail: map[string]error{}}
	f.start()
	t.Cleanup(f.stop)
	return f
}

func (f *fixture) start() {
	st, err := OpenStore(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	mgrs := map[gridtypes.WorkloadType]Manager{
		gridtypes.ZMountType: f.rec, gridtypes.VolumeType: updRecorder{f.rec}, gridtypes.ZDBType: updRecorder{f.rec},
		gridtypes.NetworkType: f.rec, gridtypes.ZMachineType: f.rec, gridtypes.PublicIPType: f.rec,
	}
	for t, m := range f.mgrs {
		mgrs[t] = m
	}
	f.eng = NewEngine(Config{Workers: 2}, st, mgrs, f.res, testutil.Logger(f.t))
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	f.done = make(chan error, 1)
	go func() { f.done <- f.eng.Run(ctx) }()
}

func (f *fixture) stop() {
	if f.cancel == nil {
		return
	}
	f.cancel()
	if err := <-f.done; err != nil {
		f.t.Errorf("engine: %v", err)
	}
	f.eng.store.Close()
	f.cancel = nil
}

// wait polls until every workload of the deployment is in a final state.
func (f *fixture) wait(twin uint32, contract uint64) *gridtypes.Deployment {
	f.t.Helper()
	var d *gridtypes.Deployment
	testutil.Eventually(f.t, 10*time.Second, fmt.Sprintf("deployment %d-%d to settle", twin, contract), func() (bool, error) {
		// Jobs first: a job is removed only after its results are stored,
		// so a deployment read after its last job went is settled. (Read
		// the other way round, the deployment could be from before the
		// job ran, and the job gone by the time the queue is read.)
		jobs, err := f.eng.store.Jobs()
		if err != nil {
			return false, err
		}
		for _, j := range jobs {
			if j.Twin == twin && j.Contract == contract {
				return false, nil
			}
		}
		if d, err = f.eng.store.Get(twin, contract); err != nil {
			return false, err
		}
		return true, nil
	})
	return d
}

func states(d *gridtypes.Deployment) string {
	var s []string
	for _, wl := range d.Workloads {
		s = append(s, wl.Name+"="+string(wl.Result.State))
	}
	return strings.Join(s, " ")
}

func mkdep(contract uint64, wls ...string) *gridtypes.Deployment {
	d := &gridtypes.Deployment{TwinID: 1, ContractID: contract, SignatureRequirement: gridtypes.SignatureRequirement{Requests: []gridtypes.SignatureRequest{{TwinID: 1, Weight: 1}}, WeightRequired: 1}}
	for _, w := range wls {
		name, rest, _ := strings.Cut(w, ":")
		typ, data, _ := strings.Cut(rest, ":")
		d.Workloads = append(d.Workloads, gridtypes.Workload{Name: name, Type: gridtypes.WorkloadType(typ), Data: json.RawMessage(data)})
	}
	return d
}

func TestProvisionOrderAndResults(t *testing.T) {
	f := newFixture(t)
	d := mkdep(1,
		`db:zdb:{"size":1,"mode":"user"}`,
		`small:zmount:{"size":1}`,
		`vol:volume:{"size":5}`,
		`big:zmount:{"size":10}`,
		`bad:zdb:{"size":1,"mode":"user"}`,
		`odd:ipv4:{}`,
	)
	f.rec.fail["bad"] = fmt.Errorf("no HDD pool can hold 1 bytes")
	if err := f.eng.Provision(d); err != nil {
		t.Fatal(err)
	}
	got := f.wait(1, 1)
	if want := "db=ok small=ok vol=ok big=ok bad=error odd=error"; states(got) != want {
		t.Fatalf("got %s, want %s", states(got), want)
	}
	if msg := got.Get("bad").Result.Error; !strings.Contains(msg, "no HDD pool") {
		t.Fatalf("error message %q", msg)
	}
	if msg := got.Get("odd").Result.Error; !strings.Contains(msg, "not supported") {
		t.Fatalf("error message %q", msg)
	}
	// zmounts bigger first, then volume, then zdb.
	if want := "create zmount big,create zmount small,create volume vol,create zdb db"; strings.Join(f.lines, ",") != want {
		t.Fatalf("got order %q, want %q", strings.Join(f.lines, ","), want)
	}
	if err := f.eng.Provision(d); err == nil {
		t.Fatal("second create of the same deployment accepted")
	}

	// Update: grow the volume, change zdb mode (unchanged), remove big, add one.
	nd := d.Clone()
	nd.Version = 1
	nd.Workloads = []gridtypes.Workload{*nd.Get("db"), *nd.Get("small"), *nd.Get("vol"), *nd.Get("bad"), *nd.Get("odd")}
	nd.Get("vol").Version, nd.Get("vol").Data = 1, json.RawMessage(`{"size":6}`)
	nd.Get("db").Version, nd.Get("db").Data = 1, json.RawMessage(`{"size":1,"mode":"seq"}`)
	nd.Workloads = append(nd.Workloads, gridtypes.Workload{Version: 1, Name: "extra", Type: gridtypes.ZMountType, Data: json.RawMessage(`{"size":2}`)})
	ops, err := gridtypes.Upgrade(got, nd)
	if err != nil {
		t.Fatal(err)
	}
	f.lines = nil
	if err := f.eng.Update(nd, ops); err != nil {
		t.Fatal(err)
	}
	got = f.wait(1, 1)
	if want := "db=unchanged small=ok vol=ok bad=error odd=error extra=ok"; states(got) != want {
		t.Fatalf("got %s, want %s", states(got), want)
	}
	if want := "delete zmount big,create zmount extra,update volume vol"; strings.Join(f.lines, ",") != want {
		t.Fatalf("got %q, want %q", strings.Join(f.lines, ","), want)
	}

	// Deprovision: reverse order, everything deleted.
	f.lines = nil
	if err := f.eng.Deprovision(1, 1, "contract canceled"); err != nil {
		t.Fatal(err)
	}
	got = f.wait(1, 1)
	for _, wl := range got.Workloads {
		if wl.Result.State != gridtypes.StateDeleted || wl.Result.Error != "contract canceled" {
			t.Fatalf("%s: %s %q", wl.Name, wl.Result.State, wl.Result.Error)
		}
	}
	if want := "delete zdb bad,delete zdb db,delete volume vol,delete zmount small,delete zmount extra"; strings.Join(f.lines, ",") != want {
		t.Fatalf("got %q, want %q", strings.Join(f.lines, ","), want)
	}
	ch, err := f.eng.store.Changes(1, 1)
	if err != nil {
		t.Fatal(err)
	}
	var vol []string
	for _, wl := range ch {
		if wl.Name == "vol" {
			vol = append(vol, string(wl.Result.State))
		}
	}
	if want := "init ok init ok deleted"; strings.Join(vol, " ") != want {
		t.Fatalf("history of vol: %q, want %q", strings.Join(vol, " "), want)
	}
}

func TestCapacity(t *testing.T) {
	f := newFixture(t)
	// 8 GiB total, 2 GiB reserved: a 4 GiB VM fits, a second does not.
	vm := `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":4294967296}}`
	if err := f.eng.Provision(mkdep(1, "vm:zmachine:"+vm)); err != nil {
		t.Fatal(err)
	}
	if s := states(f.wait(1, 1)); s != "vm=ok" {
		t.Fatal(s)
	}
	if err := f.eng.Provision(mkdep(2, "vm:zmachine:"+vm, `d:zmount:{"size":1}`)); err != nil {
		t.Fatal(err)
	}
	d := f.wait(1, 2)
	if s := states(d); s != "vm=error d=ok" {
		t.Fatal(s)
	}
	if msg := d.Get("vm").Result.Error; !strings.Contains(msg, "not enough capacity: memory needs 4294967296 bytes, 2147483648 free") {
		t.Fatalf("message %q", msg)
	}
	if s := states(f.wait(1, 1)); s != "vm=ok" {
		t.Fatalf("first deployment affected: %s", s)
	}
	if err := f.eng.Provision(mkdep(3, `big:zmount:{"size":107374182400}`)); err != nil {
		t.Fatal(err)
	}
	if msg := f.wait(1, 3).Get("big").Result.Error; !strings.Contains(msg, "SSD needs") {
		t.Fatalf("message %q", msg)
	}
}

// TestRestartReplays stops the engine while a job is blocked, then starts a
// new engine on the same store: the job replays, each workload is created
// once and reaches ok once.
func TestRestartReplays(t *testing.T) {
	f := newFixture(t)
	f.rec.block = make(chan struct{})
	for c := uint64(1); c <= 5; c++ {
		if err := f.eng.Provision(mkdep(c, `a:zmount:{"size":1}`, `b:zdb:{"size":1,"mode":"user"}`)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 5*time.Second, "a job to block", func() (bool, error) { return f.rec.waiting.Load() > 0, nil })
	f.stop()
	f.rec.block = nil
	f.start()
	for c := uint64(1); c <= 5; c++ {
		if s := states(f.wait(1, c)); s != "a=ok b=ok" {
			t.Fatalf("contract %d: %s", c, s)
		}
	}
	// A restart re-provisions ok workloads (boot) without new records.
	f.stop()
	f.rec.exists = map[gridtypes.WorkloadID]bool{} // as after a reboot
	f.start()
	_ = testutil.Poll(10*time.Second, func() (bool, error) {
		f.rec.mu.Lock()
		n := len(f.lines)
		f.rec.mu.Unlock()
		return n >= 20, nil
	})
	for c := uint64(1); c <= 5; c++ {
		f.wait(1, c)
		ch, _ := f.eng.store.Changes(1, c)
		oks := 0
		for _, wl := range ch {
			if wl.Result.State == gridtypes.StateOk {
				oks++
			}
		}
		if oks != 2 {
			t.Fatalf("contract %d: %d ok records, want 2", c, oks)
		}
	}
	if n := len(f.lines); n != 20 {
		t.Fatalf("got %d creations, want 20 (10 workloads, rebuilt once after the reboot): %v", n, f.lines)
	}
}

func TestSharableNames(t *testing.T) {
	f := newFixture(t)
	key := `"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="`
	net := `net:network:{"ip_range":"10.1.0.0/16","subnet":"10.1.2.0/24","wireguard_private_key":` + key + `}`
	if err := f.eng.Provision(mkdep(1, net)); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Provision(mkdep(2, net)); err == nil || !strings.Contains(err.Error(), "name conflict") {
		t.Fatalf("got %v, want a name conflict", err)
	}
	// Another twin may use the name.
	d := mkdep(3, net)
	d.TwinID = 2
	if err := f.eng.Provision(d); err != nil {
		t.Fatal(err)
	}
}

// TestUsedIndex checks the used-capacity index against a full recount
// through provision, update and deprovision.
func TestUsedIndex(t *testing.T) {
	f := newFixture(t)
	recount := func() gridtypes.Capacity {
		all, err := f.eng.store.All()
		if err != nil {
			t.Fatal(err)
		}
		var c gridtypes.Capacity
		for _, d := range all {
			u, err := UsedBy(d)
			if err != nil {
				t.Fatal(err)
			}
			c.Add(u)
		}
		return c
	}
	check := func(when string) {
		t.Helper()
		got, err := f.eng.Used()
		if err != nil {
			t.Fatal(err)
		}
		if want := recount(); got != want {
			t.Fatalf("%s: index says %+v, recount %+v", when, got, want)
		}
	}
	d := mkdep(1, `a:zmount:{"size":10}`, `b:zdb:{"size":20,"mode":"user"}`)
	if err := f.eng.Provision(d); err != nil {
		t.Fatal(err)
	}
	got := f.wait(1, 1)
	check("after provision")
	if u, _ := f.eng.Used(); u.SRU != 10 || u.HRU != 20 {
		t.Fatalf("used %+v", u)
	}
	nd := got.Clone()
	nd.Version = 1
	nd.Workloads = []gridtypes.Workload{*nd.Get("b")}
	nd.Workloads[0].Version = 1
	nd.Workloads[0].Data = json.RawMessage(`{"size":30,"mode":"user"}`)
	ops, err := gridtypes.Upgrade(got, nd)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Update(nd, ops); err != nil {
		t.Fatal(err)
	}
	f.wait(1, 1)
	check("after update")
	if u, _ := f.eng.Used(); u.SRU != 0 || u.HRU != 30 {
		t.Fatalf("used after update %+v", u)
	}
	if err := f.eng.Deprovision(1, 1, "bye"); err != nil {
		t.Fatal(err)
	}
	f.wait(1, 1)
	check("after deprovision")
	if u, _ := f.eng.Used(); !u.Zero() {
		t.Fatalf("used after deprovision %+v", u)
	}
}

// A decommissioned workload is removed by its manager and ends deleted
// with the reason; the rest of its deployment keeps running.
func TestDecommission(t *testing.T) {
	f := newFixture(t)
	d := mkdep(7, `disk:zmount:{"size":1}`, `db:zdb:{"size":1,"mode":"user"}`)
	if err := f.eng.Provision(d); err != nil {
		t.Fatal(err)
	}
	f.wait(1, 7)
	if err := f.eng.Decommission(gridtypes.NewWorkloadID(1, 7, "db"), "crashed 5 times in 2m0s"); err != nil {
		t.Fatal(err)
	}
	got := f.wait(1, 7)
	if s := states(got); s != "disk=ok db=deleted" {
		t.Fatalf("states: %s", s)
	}
	if msg := got.Get("db").Result.Error; msg != "workload decommissioned by system, reason: crashed 5 times in 2m0s" {
		t.Fatalf("reason: %q", msg)
	}
	if err := f.eng.Decommission(gridtypes.NewWorkloadID(1, 99, "db"), "x"); err == nil {
		t.Fatal("decommissioning a workload of an unknown deployment succeeded")
	}
}

// A deployment whose workloads all failed is kept across a restart (the
// owner still sees why); one whose workloads were all deleted is purged.
func TestRestartKeepsFailed(t *testing.T) {
	f := newFixture(t)
	f.rec.fail["bad"] = fmt.Errorf("no space")
	if err := f.eng.Provision(mkdep(1, `bad:zdb:{"size":1,"mode":"user"}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.eng.Provision(mkdep(2, `gone:zdb:{"size":1,"mode":"user"}`)); err != nil {
		t.Fatal(err)
	}
	f.wait(1, 1)
	f.wait(1, 2)
	if err := f.eng.Deprovision(1, 2, "canceled"); err != nil {
		t.Fatal(err)
	}
	f.wait(1, 2)
	f.stop()
	f.start()
	d := f.wait(1, 1)
	if s := states(d); s != "bad=error" || d.Get("bad").Result.Error != "no space" {
		t.Fatalf("after a restart: %s %q", s, d.Get("bad").Result.Error)
	}
	testutil.Eventually(t, 10*time.Second, "the deleted deployment to go after a restart", func() (bool, error) {
		_, err := f.eng.store.Get(1, 2)
		return errors.Is(err, ErrNotFound), fmt.Errorf("the deleted deployment after a restart: %v", err)
	})
	// The purge ran: the failed one is still there.
	if d, err := f.eng.store.Get(1, 1); err != nil || states(d) != "bad=error" {
		t.Fatalf("the failed deployment after the purge: %v", err)
	}
}

// Data decodes a workload's data as its manager's type; a workload of
// another type (a routing mistake) is an error, not a panic.
func TestData(t *testing.T) {
	d := mkdep(1, `v:volume:{"size":5}`)
	wl := &Workload{Workload: d.Workloads[0], ID: d.WorkloadID("v"), Deployment: d}
	v, err := Data[*gridtypes.Volume](wl)
	if err != nil || v.Size != 5 {
		t.Fatalf("volume data: %+v, %v", v, err)
	}
	if _, err := Data[*gridtypes.ZMachine](wl); err == nil || !strings.Contains(err.Error(), "is a volume") {
		t.Fatalf("a volume read as a zmachine: %v", err)
	}
	wl.Data = json.RawMessage(`{"size":"big"}`)
	if _, err := Data[*gridtypes.Volume](wl); err == nil {
		t.Fatal("undecodable data: no error")
	}
}

// needsNet is a zmachine manager that, like the real one, fails when the
// network resource it names has not been made since the (re)boot.
type needsNet struct {
	*recorder
	net gridtypes.WorkloadID
}

func (m needsNet) Provision(ctx context.Context, wl *Workload) (any, error) {
	m.mu.Lock()
	ok := m.exists[m.net]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("network has no resource on this node")
	}
	return m.recorder.Provision(ctx, wl)
}

// A VM deploy interrupted by a crash is queued before the restart's
// re-provisioning of its twin's network: after the restart the network is
// rebuilt first, so the VM finds it (it failed in about half the runs
// when both started at once).
func TestRestartNetworksFirst(t *testing.T) {
	net := gridtypes.NewWorkloadID(1, 1, "n")
	f := &fixture{t: t, path: filepath.Join(t.TempDir(), "store.bolt"), res: defaultRes}
	f.rec = &recorder{lines: &f.lines, exists: map[gridtypes.WorkloadID]bool{}, fail: map[string]error{}}
	f.mgrs = map[gridtypes.WorkloadType]Manager{gridtypes.ZMachineType: needsNet{f.rec, net}}
	f.start()
	t.Cleanup(f.stop)
	if err := f.eng.Provision(mkdep(1, `n:network:{}`)); err != nil {
		t.Fatal(err)
	}
	if s := states(f.wait(1, 1)); s != "n=ok" {
		t.Fatalf("network: %s", s)
	}
	f.rec.block = make(chan struct{})
	if err := f.eng.Provision(mkdep(2, `vm:zmachine:{}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, "the VM's job to block", func() (bool, error) { return f.rec.waiting.Load() > 0, nil })
	f.stop() // the VM's job stays queued, as after a crash
	f.rec.block = nil
	f.rec.exists = map[gridtypes.WorkloadID]bool{} // a reboot: nothing exists
	f.start()
	if s := states(f.wait(1, 2)); s != "vm=ok" {
		t.Fatalf("VM after the restart: %s, want ok (its network rebuilt first)", s)
	}
}
