package api

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/testutil"
)

// newWaitAPI returns an API over a real store holding deployment 7-12 with
// one zdb workload in init.
func newWaitAPI(t *testing.T) (*API, *provision.Store, gridtypes.Workload) {
	t.Helper()
	st, err := provision.OpenStore(filepath.Join(t.TempDir(), "workloads.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := &gridtypes.Deployment{TwinID: 7, ContractID: 12, Workloads: []gridtypes.Workload{
		{Name: "db", Type: gridtypes.ZDBType, Data: json.RawMessage(`{"size":1,"mode":"user"}`)},
	}}
	if err := st.Create(d, provision.Job{Kind: provision.JobProvision, Twin: 7, Contract: 12}); err != nil {
		t.Fatal(err)
	}
	return New(1, nil, noEngine{}, st, nil), st, d.Workloads[0]
}

func waitReq(t *testing.T, r nodeapi.WaitRequest) []byte {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func stateOf(t *testing.T, v any) gridtypes.ResultState {
	t.Helper()
	d, ok := v.(*gridtypes.Deployment)
	if !ok || len(d.Workloads) != 1 {
		t.Fatalf("got %#v, want a deployment of one workload", v)
	}
	return d.Workloads[0].Result.State
}

// TestWaitAnswersWhenSettled: a wait returns as soon as the result is
// committed, long before its wait_ms, with the new state.
func TestWaitAnswersWhenSettled(t *testing.T) {
	a, st, wl := newWaitAPI(t)
	type answer struct {
		v   any
		err error
		in  time.Duration
	}
	got := make(chan answer, 1)
	t0 := time.Now()
	go func() {
		v, err := a.wait(context.Background(), 7, waitReq(t, nodeapi.WaitRequest{ContractID: 12, WaitMS: 60000}))
		got <- answer{v, err, time.Since(t0)}
	}()
	testutil.Never(t, 200*time.Millisecond, "the wait answering before the result was set", func() (bool, error) {
		return len(got) > 0, nil
	})
	wl.Result = gridtypes.Result{State: gridtypes.StateOk}
	if err := st.SetResult(7, 12, wl); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	if s := stateOf(t, r.v); s != gridtypes.StateOk {
		t.Errorf("got state %s, want ok", s)
	}
	if r.in > 30*time.Second {
		t.Errorf("answered after %s, want at the commit, not at wait_ms", r.in)
	}
}

// TestWaitBounds: a wait ends at wait_ms, at the request's deadline, and
// answers at once (the current state) when it would exceed the waits a
// twin or the node may hold; bad requests and deployments of others are
// errors.
func TestWaitBounds(t *testing.T) {
	a, _, _ := newWaitAPI(t)
	ctx := context.Background()

	t0 := time.Now()
	v, err := a.wait(ctx, 7, waitReq(t, nodeapi.WaitRequest{ContractID: 12, WaitMS: 50}))
	if err != nil || stateOf(t, v) != gridtypes.StateInit {
		t.Errorf("wait_ms 50: got %v, %v, want the deployment in init", v, err)
	}
	if d := time.Since(t0); d < 50*time.Millisecond {
		t.Errorf("wait_ms 50 answered after %s, want at least 50ms", d)
	}

	dctx, cancel := context.WithTimeout(ctx, waitAnswerMargin+100*time.Millisecond)
	defer cancel()
	if _, err := a.wait(dctx, 7, waitReq(t, nodeapi.WaitRequest{ContractID: 12, WaitMS: 60000})); err != nil || dctx.Err() != nil {
		t.Errorf("wait bounded by the deadline: got %v (context %v), want an answer before the deadline", err, dctx.Err())
	}

	// Twin 7 holds all its waits: the next answers at once.
	for range maxWaitsPerTwin {
		if !a.waits.take(7) {
			t.Fatal("could not take a wait")
		}
	}
	t0 = time.Now()
	if _, err := a.wait(ctx, 7, waitReq(t, nodeapi.WaitRequest{ContractID: 12, WaitMS: 60000})); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("wait past the per-twin limit answered after %s, want at once", d)
	}
	for range maxWaitsPerTwin {
		a.waits.release(7)
	}
	if a.waits.total != 0 || len(a.waits.byTwin) != 0 {
		t.Errorf("waits left: total %d, by twin %v, want none", a.waits.total, a.waits.byTwin)
	}

	for _, tt := range []struct {
		name string
		src  uint32
		req  string
		want string
	}{
		{"negative wait", 7, `{"contract_id":12,"wait_ms":-1}`, "negative"},
		{"not json", 7, `{`, "decoding request"},
		{"another twin's deployment", 8, `{"contract_id":12,"wait_ms":1000}`, "not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.wait(ctx, tt.src, []byte(tt.req))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
			if tt.want == "not found" && !errors.Is(err, provision.ErrNotFound) {
				t.Errorf("got %v, want provision.ErrNotFound", err)
			}
		})
	}
}

// TestSettled: settled means every workload left init at the version
// asked or later.
func TestSettled(t *testing.T) {
	d := func(v uint32, states ...gridtypes.ResultState) *gridtypes.Deployment {
		out := &gridtypes.Deployment{Version: v}
		for _, s := range states {
			out.Workloads = append(out.Workloads, gridtypes.Workload{Result: gridtypes.Result{State: s}})
		}
		return out
	}
	for _, tt := range []struct {
		name    string
		d       *gridtypes.Deployment
		version uint32
		want    bool
	}{
		{"all ok", d(0, gridtypes.StateOk, gridtypes.StateError), 0, true},
		{"one in init", d(0, gridtypes.StateOk, gridtypes.StateInit), 0, false},
		{"no state yet", d(0, ""), 0, false},
		{"older version", d(1, gridtypes.StateOk), 2, false},
		{"newer version", d(3, gridtypes.StateOk), 2, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Settled(tt.d, tt.version); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
