package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
)

// Bounds of zos.deployment.wait: a waiting call holds one of the relay
// server's workers, so a twin must not be able to hold them all. Past these
// limits the wait answers the current state at once, as get does.
const (
	maxWait          = 10 * time.Second
	maxWaits         = 32 // at once, all twins
	maxWaitsPerTwin  = 16
	waitAnswerMargin = 500 * time.Millisecond // left of the request's ttl to answer in
)

// waits counts the running waits.
type waits struct {
	mu     sync.Mutex // guards total and byTwin
	total  int
	byTwin map[uint32]int
}

// take reserves a wait for twin, or reports that none is left.
func (w *waits) take(twin uint32) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.total >= maxWaits || w.byTwin[twin] >= maxWaitsPerTwin {
		return false
	}
	if w.byTwin == nil {
		w.byTwin = make(map[uint32]int)
	}
	w.total++
	w.byTwin[twin]++
	return true
}

func (w *waits) release(twin uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.total--
	if w.byTwin[twin]--; w.byTwin[twin] <= 0 {
		delete(w.byTwin, twin)
	}
}

// Settled reports whether every workload of d is at version or later and
// out of init: what a client deploying waits for.
func Settled(d *gridtypes.Deployment, version uint32) bool {
	if d.Version < version {
		return false
	}
	for _, wl := range d.Workloads {
		if wl.Result.State.IsAny(gridtypes.StateInit, "") {
			return false
		}
	}
	return true
}

// wait answers zos.deployment.wait: the deployment once Settled, woken by
// the store's commit of a change rather than polled, or as it is when the
// wait ends.
func (a *API) wait(ctx context.Context, src uint32, payload []byte) (any, error) {
	var r nodeapi.WaitRequest
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	if r.WaitMS < 0 {
		return nil, fmt.Errorf("wait_ms %d is negative", r.WaitMS)
	}
	wait := min(time.Duration(r.WaitMS)*time.Millisecond, maxWait)
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)-waitAnswerMargin)
	}
	if wait > 0 && !a.waits.take(src) {
		wait = 0
	}
	if wait > 0 {
		defer a.waits.release(src)
	}
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	for {
		changed := a.store.Changed(src, r.ContractID) // before reading
		d, err := a.store.Get(src, r.ContractID)
		if err != nil || wait <= 0 || Settled(d, r.Version) {
			return d, err
		}
		select {
		case <-changed:
		case <-timer.C:
			return a.store.Get(src, r.ContractID)
		case <-ctx.Done():
			return a.store.Get(src, r.ContractID)
		}
	}
}
