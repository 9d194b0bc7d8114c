package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/gridtypes"
	bolt "go.etcd.io/bbolt"
)

// Pauser is a Manager that can pause a workload without removing it (a VM
// stops running, a zdb namespace refuses writes, a gateway stops serving)
// and resume it as it was. Both must be idempotent: pausing a paused
// workload, or resuming a running one, changes nothing. Types whose
// manager is no Pauser are only marked paused.
type Pauser interface {
	Pause(ctx context.Context, wl *Workload) error
	Resume(ctx context.Context, wl *Workload) error
}

// Job kinds of the billing state.
const (
	// JobPause pauses every running workload of a contract in its grace
	// period; they keep their capacity.
	JobPause = "pause"
	// JobResume resumes the paused workloads of a contract paid again.
	JobResume = "resume"
)

// Errors of the billing state.
var (
	// ErrStale marks a state change not newer than the one applied.
	ErrStale = errors.New("state change is not newer than the applied one")
	// ErrGrace refuses changes to a contract in its grace period.
	ErrGrace = errors.New("contract is in its grace period")
)

// ReasonOutOfFunds is the result message of workloads removed because
// their contract's grace period ended.
const ReasonOutOfFunds = "contract out of funds: the grace period ended"

// pausedMessage is the result message of a paused workload.
const pausedMessage = "paused: the contract is in its grace period"

var bucketBilling = []byte("billing") // key(twin,contract) -> BillingState JSON

// BillingState is the last billing state the node applied to a contract.
type BillingState struct {
	State string `json:"state"`
	Seq   uint64 `json:"seq"`
	At    int64  `json:"at"`
}

func getBilling(tx *bolt.Tx, twin uint32, contract uint64) (BillingState, bool, error) {
	b := tx.Bucket(bucketBilling)
	if b == nil {
		return BillingState{}, false, nil
	}
	v := b.Get(depKey(twin, contract))
	if v == nil {
		return BillingState{}, false, nil
	}
	var s BillingState
	if err := json.Unmarshal(v, &s); err != nil {
		return s, false, fmt.Errorf("decoding billing state of %d-%d: %w", twin, contract, err)
	}
	return s, true, nil
}

// Billing returns the billing state applied to a contract (none: the
// zero state, meaning active).
func (s *Store) Billing(twin uint32, contract uint64) (BillingState, error) {
	var st BillingState
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		st, _, err = getBilling(tx, twin, contract)
		return err
	})
	return st, err
}

// SetBilling records st for a stored deployment and enqueues job, in one
// transaction; a change whose Seq is not above the recorded one is refused
// with ErrStale and nothing is stored.
func (s *Store) SetBilling(twin uint32, contract uint64, st BillingState, job Job) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if _, err := getDeployment(tx, twin, contract); err != nil {
			return err
		}
		cur, ok, err := getBilling(tx, twin, contract)
		if err != nil {
			return err
		}
		if ok && st.Seq <= cur.Seq {
			return fmt.Errorf("%w: contract %d seq %d, applied %d", ErrStale, contract, st.Seq, cur.Seq)
		}
		b, err := tx.CreateBucketIfNotExists(bucketBilling)
		if err != nil {
			return err
		}
		v, err := json.Marshal(st)
		if err != nil {
			return err
		}
		if err := b.Put(depKey(twin, contract), v); err != nil {
			return err
		}
		return enqueue(tx, &job)
	})
}

// ApplyContractState applies the grid's billing state change of a
// contract, which the caller verified: grace pauses the deployment's
// workloads (they keep their capacity), active resumes them, out of funds
// removes them. Changes apply in Seq order: one not newer than the last
// applied is refused with ErrStale and changes nothing. The state is kept
// in the store, so a node restarted during grace pauses again.
func (e *Engine) ApplyContractState(c billing.StateChange) error {
	if err := c.Validate(); err != nil {
		return err
	}
	job := Job{Twin: c.TwinID, Contract: c.ContractID}
	switch c.State {
	case billing.StateGrace:
		job.Kind = JobPause
	case billing.StateActive:
		job.Kind = JobResume
	case billing.StateOutOfFunds:
		job.Kind, job.Reason = JobDeprovision, ReasonOutOfFunds
	}
	if err := e.store.SetBilling(c.TwinID, c.ContractID, BillingState{State: c.State, Seq: c.Seq, At: c.At}, job); err != nil {
		return err
	}
	e.reload()
	return nil
}

// pause pauses the running workloads of d, the last installed first. A
// workload whose manager fails to pause is still marked paused (it keeps
// its capacity, and the message says what failed); the job goes on with
// the others.
func (e *Engine) pause(ctx context.Context, d *gridtypes.Deployment) error {
	wls := inInstallOrder(d)
	var errs []error
	for i := len(wls) - 1; i >= 0; i-- {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wl := wls[i]
		if !wl.Result.State.IsOkay() {
			continue
		}
		msg := pausedMessage
		if p, ok := e.managers[wl.Type].(Pauser); ok {
			if err := p.Pause(ctx, e.workload(d, wl)); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				errs = append(errs, fmt.Errorf("pausing %s: %w", wl.Name, err))
				msg = fmt.Sprintf("%s (pausing: %v)", pausedMessage, err)
			}
		}
		if wl.Result.State == gridtypes.StatePaused && wl.Result.Error == msg {
			continue
		}
		if err := e.record(d, *wl, gridtypes.StatePaused, json.RawMessage(wl.Result.Data), msg); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// resume resumes the paused workloads of d in install order. One that
// fails to resume turns error (it holds nothing any more).
func (e *Engine) resume(ctx context.Context, d *gridtypes.Deployment) error {
	for _, wl := range inInstallOrder(d) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wl.Result.State != gridtypes.StatePaused {
			continue
		}
		if p, ok := e.managers[wl.Type].(Pauser); ok {
			if err := p.Resume(ctx, e.workload(d, wl)); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err := e.record(d, *wl, gridtypes.StateError, nil, fmt.Sprintf("resuming: %v", err)); err != nil {
					return err
				}
				continue
			}
		}
		if err := e.record(d, *wl, gridtypes.StateOk, json.RawMessage(wl.Result.Data), ""); err != nil {
			return err
		}
	}
	return nil
}

// checkNotInGrace refuses a change to a contract in its grace period.
func (e *Engine) checkNotInGrace(twin uint32, contract uint64) error {
	st, err := e.store.Billing(twin, contract)
	if err != nil {
		return err
	}
	if st.State == billing.StateGrace {
		return fmt.Errorf("%w: contract %d cannot change until it is paid", ErrGrace, contract)
	}
	return nil
}
