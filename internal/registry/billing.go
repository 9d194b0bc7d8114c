package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zos-go/zos/internal/billing"
)

// ContractBilling is the billing record of a contract: the usage reports
// not billed yet, what is billed but not paid, and its billing state.
// Every change is one compare-and-set of this record.
type ContractBilling struct {
	ContractID uint64 `json:"contract_id"`
	// ReportedEnd is the end of the last accepted usage window: a report
	// must start at or after it (no double counting; a gap is not billed).
	ReportedEnd int64                 `json:"reported_end"`
	Pending     []billing.UsageReport `json:"pending,omitempty"`
	// BilledUntil is how far rent and name contracts are billed (unix s).
	BilledUntil int64 `json:"billed_until"`
	// Due is billed and not paid yet.
	Due int64 `json:"due"`
	// Carry is the fraction of a unit the node contract's reports cost
	// beyond its bills so far (an exact rational, "" for none): added to
	// the next bill, so that small reports are not each rounded away.
	Carry string `json:"carry,omitempty"`
	// Bills counts the bills; LastBill is the newest, copied to the bills
	// bucket right after it is made or by the next run.
	Bills    uint64 `json:"bills"`
	LastBill *Bill  `json:"last_bill,omitempty"`
	// Paying is a payment under way: redone (each transfer once, by its
	// ref) until it is recorded here as paid.
	Paying *payment `json:"paying,omitempty"`
	// State is the billing state (billing.StateGrace, ...); StateSeq the
	// sequence of its last signed change; GraceSince when grace began.
	State      string `json:"state,omitempty"`
	StateSeq   uint64 `json:"state_seq"`
	GraceSince int64  `json:"grace_since,omitempty"`
	// Change is the last signed state change, for a node that starts
	// again to re-apply (it verifies it with the billing key it pinned).
	Change *billing.StateChange `json:"change,omitempty"`
}

// payment moves Amount from the contract's twin to the farm's twin and
// the grid; Ref makes each transfer happen once.
type payment struct {
	Ref      string `json:"ref"`
	Amount   int64  `json:"amount"`
	Twin     uint32 `json:"twin"`
	FarmTwin uint32 `json:"farm_twin"` // 0: all to the grid
	Share    int64  `json:"share"`     // the grid's part
}

// Bill is one bill of a contract: what its usage since the previous bill
// cost under the pricing policy.
type Bill struct {
	ContractID uint64 `json:"contract_id"`
	Seq        uint64 `json:"seq"`
	TwinID     uint32 `json:"twin_id"`
	// Start and End bound the billed time (unix s); Reports is how many
	// usage reports it covers (node contracts).
	Start   int64 `json:"start"`
	End     int64 `json:"end"`
	Reports int   `json:"reports"`
	Amount  int64 `json:"amount"`
	// Due is what the contract owed with this bill, before paying.
	Due  int64     `json:"due"`
	Time time.Time `json:"time"`
}

func billKey(contract, seq uint64) string { return fmt.Sprintf("%d.%020d", contract, seq) }

// billingRecord reads a contract's billing record (an empty one when it
// has none, rev 0).
func (s *Service) billingRecord(ctx context.Context, id uint64) (ContractBilling, uint64, error) {
	var b ContractBilling
	rev, err := getJSON(ctx, s.st.billing, idKey(id), &b)
	if errors.Is(err, ErrNotFound) {
		return ContractBilling{ContractID: id}, 0, nil
	}
	return b, rev, err
}

// updateBilling applies f to a contract's billing record under
// compare-and-set, creating it when absent.
func (s *Service) updateBilling(ctx context.Context, id uint64, f func(*ContractBilling) error) (ContractBilling, error) {
	for i := range casRetries {
		b, rev, err := s.billingRecord(ctx, id)
		if err != nil {
			return b, err
		}
		if err := f(&b); err != nil {
			return b, err
		}
		err = putJSON(ctx, s.st.billing, idKey(id), rev, &b)
		if errors.Is(err, errConflict) || (rev == 0 && errors.Is(err, ErrExists)) {
			backoff(i)
			continue
		}
		if err != nil {
			return b, err
		}
		return b, nil
	}
	return ContractBilling{}, fmt.Errorf("updating billing of contract %d: %w", id, errConflict)
}

// persistBill copies the record's last bill to the bills bucket (once).
func (s *Service) persistBill(ctx context.Context, b *ContractBilling) {
	if b.LastBill == nil {
		return
	}
	err := putJSON(ctx, s.st.bills, billKey(b.ContractID, b.LastBill.Seq), 0, b.LastBill)
	if err != nil && !errors.Is(err, ErrExists) {
		s.log.Warn("bill_write_deferred", "contract_id", b.ContractID, "seq", b.LastBill.Seq, "err", err)
	}
}

// lease is the billing leader's claim, in the index bucket.
type lease struct {
	Holder string `json:"holder"`
	Until  int64  `json:"until"` // unix nanoseconds
}

const leaseKey = "lease.billing"

// acquireLease claims (or renews) the billing lease for ttl; false when
// another live holder has it. One compare-and-set decides between
// servers.
func (s *Service) acquireLease(ctx context.Context, holder string, ttl time.Duration) (bool, error) {
	now := s.cfg.Now()
	var l lease
	rev, err := getJSON(ctx, s.st.index, leaseKey, &l)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if rev != 0 && l.Holder != holder && l.Until > now.UnixNano() {
		return false, nil
	}
	err = putJSON(ctx, s.st.index, leaseKey, rev, lease{Holder: holder, Until: now.Add(ttl).UnixNano()})
	if errors.Is(err, errConflict) || errors.Is(err, ErrExists) {
		return false, nil
	}
	return err == nil, err
}

// RunBilling bills every period while this service holds the billing
// lease (one leader in a cluster), until ctx ends. It needs the billing
// key.
func (s *Service) RunBilling(ctx context.Context) error {
	if s.cfg.Billing.Key == nil {
		return errors.New("billing needs the grid's billing key")
	}
	id := make([]byte, 8)
	_, _ = rand.Read(id)
	holder := hex.EncodeToString(id)
	period := s.cfg.Billing.Period
	t := time.NewTicker(period)
	defer t.Stop()
	s.log.Info("billing_started", "holder", holder, "period", period, "grace", s.cfg.Billing.Grace)
	leader := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ok, err := s.acquireLease(ctx, holder, 3*period)
		if err != nil {
			s.log.Warn("billing_lease_failed", "err", err)
			continue
		}
		if ok != leader {
			leader = ok
			s.log.Info("billing_leader", "holder", holder, "leader", ok)
		}
		if !ok {
			continue
		}
		if err := s.BillOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("billing_run_failed", "err", err)
		}
	}
}

// BillOnce bills every live contract once: the usage reported since its
// last bill (node contracts), the time since (rent and name contracts);
// then it takes what is due from the twin's balance, or puts the contract
// in grace, or deletes it at the grace period's end.
func (s *Service) BillOnce(ctx context.Context) error {
	// Canceled contracts too (not the ones deleted out of funds): their
	// last usage and what they owe are still billed, once.
	cs, err := list(ctx, s.st.contracts, 0, func(c *Contract) uint64 { return c.ID }, func(c *Contract) bool {
		return c.State == StateCreated || c.BillingState != billing.StateOutOfFunds
	})
	if err != nil {
		return err
	}
	var errs []error
	if err := s.recoverTransfers(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, c := range cs {
		if err := s.billContract(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("billing contract %d: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

// resumeTwin bills at once the twin's contracts in grace, so that a
// deposit or a transfer that pays what they owe resumes them without
// waiting for the next period. Failures are logged: the billing loop
// tries again.
func (s *Service) resumeTwin(ctx context.Context, twin uint32) {
	if s.cfg.Billing.Key == nil {
		return
	}
	var ids []uint64
	_, err := getJSON(ctx, s.st.index, graceKey(twin), &ids)
	if errors.Is(err, ErrNotFound) {
		return
	}
	if err != nil {
		s.log.Warn("resume_failed", "twin_id", twin, "err", err)
		return
	}
	for _, id := range ids {
		c, err := s.contract(ctx, id)
		if err == nil && (c.State != StateCreated || c.BillingState != billing.StateGrace) {
			continue
		}
		if err == nil {
			err = s.billContract(ctx, c)
		}
		if err != nil {
			s.log.Warn("resume_failed", "twin_id", twin, "contract_id", c.ID, "err", err)
		}
	}
}

// graceKey is the index entry listing a twin's contracts in grace, read
// by each deposit (one read, not a scan of the contracts).
func graceKey(twin uint32) string { return fmt.Sprintf("grace.%d", twin) }

// markGrace adds (in) or removes a contract of a twin's grace list.
func (s *Service) markGrace(ctx context.Context, twin uint32, id uint64, in bool) error {
	for i := range casRetries {
		var ids []uint64
		rev, err := getJSON(ctx, s.st.index, graceKey(twin), &ids)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		ids = slices.DeleteFunc(ids, func(x uint64) bool { return x == id })
		if in {
			ids = append(ids, id)
		}
		if rev != 0 && len(ids) == 0 {
			err = s.st.index.Delete(ctx, graceKey(twin), jetstream.LastRevision(rev))
			if err != nil && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return err
			}
			if err == nil {
				return nil
			}
			backoff(i)
			continue
		}
		if rev == 0 && len(ids) == 0 {
			return nil
		}
		err = putJSON(ctx, s.st.index, graceKey(twin), rev, ids)
		if errors.Is(err, errConflict) || (rev == 0 && errors.Is(err, ErrExists)) {
			backoff(i)
			continue
		}
		return err
	}
	return errConflict
}

// rentedBy reports whether twin rents node (so that its node contracts
// there pay no capacity).
func (s *Service) rentedBy(ctx context.Context, node, twin uint32) bool {
	id, err := s.st.indexGet(ctx, fmt.Sprintf("rent.%d", node))
	if err != nil {
		return false
	}
	c, err := s.contract(ctx, id)
	return err == nil && c.State == StateCreated && c.TwinID == twin
}

// billContract bills one contract.
func (s *Service) billContract(ctx context.Context, c Contract) error {
	now := s.cfg.Now().UTC()
	// Time-billed contracts are billed up to now, canceled ones up to
	// their cancel.
	until := now.Unix()
	if c.State == StateCanceled {
		until = c.Updated.Unix()
		b, _, err := s.billingRecord(ctx, c.ID)
		if err != nil {
			return err
		}
		if len(b.Pending) == 0 && b.Due == 0 && b.Paying == nil && (c.Type == TypeNode || b.BilledUntil >= until) {
			return nil
		}
	}
	p := *s.cfg.Billing.Pricing
	// What the time-billed contracts use, the farm paid (its twin; 0: the
	// grid takes all) and its prices.
	var capacity Resources
	var names uint64
	rented := false
	farmTwin := uint32(0)
	if c.Type == TypeName {
		names = 1
	} else {
		n, err := s.node(ctx, c.NodeID)
		if err != nil {
			return err
		}
		f, err := s.farm(ctx, n.FarmID)
		if err != nil {
			return err
		}
		farmTwin, p = f.TwinID, farmPricing(p, &f)
		if c.Type == TypeRent {
			capacity = n.Total
		} else {
			rented = s.rentedBy(ctx, c.NodeID, c.TwinID)
		}
	}
	b, err := s.updateBilling(ctx, c.ID, func(b *ContractBilling) error {
		if b.BilledUntil == 0 {
			b.BilledUntil = c.Created.Unix()
		}
		bill := Bill{ContractID: c.ID, TwinID: c.TwinID, Time: now}
		switch c.Type {
		case TypeNode:
			if len(b.Pending) == 0 {
				return nil
			}
			bill.Start, bill.End, bill.Reports = b.Pending[0].Start, b.Pending[len(b.Pending)-1].End, len(b.Pending)
			// The reports' exact cost and the fraction carried from the
			// bills before, rounded down once; the rest is carried on.
			sum := new(big.Rat)
			if c, ok := new(big.Rat).SetString(b.Carry); b.Carry != "" && ok && c.Sign() > 0 && c.Cmp(big.NewRat(1, 1)) < 0 {
				sum.Set(c)
			}
			for _, r := range b.Pending {
				c, err := p.exactReportCost(r, rented)
				if err != nil {
					return err
				}
				sum.Add(sum, c)
			}
			amount, err := floorAmount(sum)
			if err != nil {
				return err
			}
			bill.Amount = amount
			b.Carry = ""
			if rest := sum.Sub(sum, new(big.Rat).SetInt64(amount)); rest.Sign() > 0 {
				b.Carry = rest.RatString()
			}
			b.Pending = nil
		default:
			bill.Start, bill.End = b.BilledUntil, until
			if bill.End <= bill.Start {
				return nil
			}
			n, err := p.Cost(Usage{Seconds: bill.End - bill.Start, Capacity: capacity, Names: names})
			if err != nil {
				return err
			}
			if n == 0 {
				// Less than a unit so far: billed later, with the time
				// after it (not rounded away at each run).
				return nil
			}
			bill.Amount = n
			b.BilledUntil = bill.End
		}
		due, err := addAmount(b.Due, bill.Amount)
		if err != nil {
			return err
		}
		b.Due = due
		b.Bills++
		bill.Seq, bill.Due = b.Bills, due
		b.LastBill = &bill
		return nil
	})
	if err != nil {
		return err
	}
	s.persistBill(ctx, &b)
	// Pay what is due: a payment, once set, stays until it is made (the
	// same ref, the same amount), so that two runs never pay twice; a
	// new one takes what was billed since.
	paid := true
	for range 3 {
		if b.Due == 0 && b.Paying == nil {
			break
		}
		if b.Paying == nil {
			b, err = s.updateBilling(ctx, c.ID, func(b *ContractBilling) error {
				if b.Paying == nil && b.Due > 0 {
					share := b.Due * p.GridShare / 100 // Due <= 2^53, GridShare <= 100: no overflow
					if farmTwin == 0 {
						share = b.Due
					}
					b.Paying = &payment{Ref: fmt.Sprintf("bill:%d:%d", c.ID, b.Bills), Amount: b.Due, Twin: c.TwinID, FarmTwin: farmTwin, Share: share}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if b.Paying == nil {
				break
			}
		}
		if paid, err = s.pay(ctx, c.ID, *b.Paying); err != nil {
			return err
		}
		if b, err = s.billingRecord0(ctx, c.ID); err != nil {
			return err
		}
		if !paid {
			break
		}
	}
	if c.State == StateCanceled {
		// Billed for what it used; what it cannot pay stays due.
		return nil
	}
	switch {
	case paid && b.Due == 0 && b.State == billing.StateGrace:
		// A contract that owes nothing stays in grace while another of
		// its twin's cannot pay (the twin's balance is short, not the
		// contract's).
		if owes, err := s.twinOwes(ctx, c.TwinID, c.ID); err != nil || owes {
			return err
		}
		return s.changeState(ctx, c, billing.StateActive, now)
	case !paid && b.State != billing.StateGrace:
		return s.changeState(ctx, c, billing.StateGrace, now)
	case !paid && now.Sub(time.Unix(b.GraceSince, 0)) >= s.cfg.Billing.Grace:
		return s.changeState(ctx, c, billing.StateOutOfFunds, now)
	}
	return nil
}

// twinOwes reports whether a contract of twin other than except is in
// grace with an amount it could not pay.
func (s *Service) twinOwes(ctx context.Context, twin uint32, except uint64) (bool, error) {
	var ids []uint64
	if _, err := getJSON(ctx, s.st.index, graceKey(twin), &ids); errors.Is(err, ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	for _, id := range ids {
		if id == except {
			continue
		}
		b, _, err := s.billingRecord(ctx, id)
		if err != nil {
			return false, err
		}
		if b.State == billing.StateGrace && (b.Due > 0 || b.Paying != nil) {
			return true, nil
		}
	}
	return false, nil
}

// cascade applies a contract's change of billing state, made because its
// twin's balance could or could not pay, to the twin's other live
// contracts that owe nothing themselves: a balance that cannot pay puts
// all the twin's contracts in grace (a contract whose usage is too small
// to be billed yet too), the end of the grace period deletes them all,
// and the payment that ends the twin's debt resumes them all.
func (s *Service) cascade(ctx context.Context, from Contract, state string, now time.Time) {
	cs, err := list(ctx, s.st.contracts, 0, func(c *Contract) uint64 { return c.ID }, func(c *Contract) bool {
		return c.TwinID == from.TwinID && c.ID != from.ID && c.State == StateCreated
	})
	if err != nil {
		s.log.Warn("billing_cascade_failed", "contract_id", from.ID, "state", state, "err", err)
		return
	}
	if state == billing.StateActive {
		if owes, err := s.twinOwes(ctx, from.TwinID, from.ID); err != nil || owes {
			return
		}
	}
	for _, c := range cs {
		b, _, err := s.billingRecord(ctx, c.ID)
		if err != nil || b.Due > 0 || b.Paying != nil {
			continue // it changes state by itself, on its own bill
		}
		inGrace := b.State == billing.StateGrace
		if (state == billing.StateGrace) == inGrace {
			continue // grace: already; active or out of funds: not in grace
		}
		if _, err := s.setState(ctx, c, state, now); err != nil {
			s.log.Warn("billing_cascade_failed", "contract_id", c.ID, "state", state, "err", err)
		}
	}
}

func (s *Service) billingRecord0(ctx context.Context, id uint64) (ContractBilling, error) {
	b, _, err := s.billingRecord(ctx, id)
	return b, err
}

// pay makes a payment under way: the twin pays, the farm and the grid get
// their parts (each once, by the payment's ref), then the record says it
// is paid. paid is false when the twin's balance cannot pay (nothing
// moved; the payment stays under way and the amount due).
func (s *Service) pay(ctx context.Context, contract uint64, pm payment) (paid bool, err error) {
	_, _, err = s.apply(ctx, pm.Twin, -pm.Amount, EntryBill, pm.Ref, pm.FarmTwin)
	if errors.Is(err, ErrInsufficientFunds) {
		// The payment stays set: tried again, as it is, by the next run.
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if farm := pm.Amount - pm.Share; farm > 0 {
		if _, _, err := s.apply(ctx, pm.FarmTwin, farm, EntryPayout, pm.Ref, pm.Twin); err != nil {
			return false, err
		}
	}
	if pm.Share > 0 {
		if _, _, err := s.apply(ctx, GridAccount, pm.Share, EntryGridShare, pm.Ref, pm.Twin); err != nil {
			return false, err
		}
	}
	_, err = s.updateBilling(ctx, contract, func(b *ContractBilling) error {
		if b.Paying != nil && b.Paying.Ref == pm.Ref {
			b.Paying = nil
			b.Due -= pm.Amount
		}
		return nil
	})
	return err == nil, err
}

// changeState records a contract's new billing state, signs the change
// with the grid's billing key and publishes it on the node's events. Out
// of funds deletes the contract: canceled, its IPs, name or node
// released, its capacity freed.
func (s *Service) changeState(ctx context.Context, c Contract, state string, now time.Time) error {
	changed, err := s.setState(ctx, c, state, now)
	if changed {
		s.cascade(ctx, c, state, now)
	}
	return err
}

// setState is changeState for one contract; changed says it changed.
func (s *Service) setState(ctx context.Context, c Contract, state string, now time.Time) (changed bool, err error) {
	errSame := errors.New("state unchanged")
	b, err := s.updateBilling(ctx, c.ID, func(b *ContractBilling) error {
		if b.State == state {
			// Another run (a deposit's, a former leader's) got here
			// first: one signed change per change.
			return errSame
		}
		b.State = state
		b.StateSeq++
		if state == billing.StateGrace {
			b.GraceSince = now.Unix()
		}
		return nil
	})
	if errors.Is(err, errSame) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.markGrace(ctx, c.TwinID, c.ID, state == billing.StateGrace); err != nil {
		s.log.Warn("grace_index_failed", "contract_id", c.ID, "err", err)
	}
	c, err = update(ctx, s.st.contracts, idKey(c.ID), func(c *Contract) error {
		c.BillingState = state
		c.Updated = now
		if state == billing.StateOutOfFunds {
			c.State = StateCanceled
			c.Used = Resources{}
		}
		return nil
	})
	if err != nil {
		return true, err
	}
	if state == billing.StateOutOfFunds {
		if err := s.releaseContract(ctx, c); err != nil {
			return true, err
		}
	}
	sc, err := billing.Sign(billing.StateChange{ContractID: c.ID, NodeID: c.NodeID, TwinID: c.TwinID, State: state,
		Seq: b.StateSeq, At: now.Unix()}, s.cfg.Billing.Key)
	if err != nil {
		return true, err
	}
	if _, err := s.updateBilling(ctx, c.ID, func(b *ContractBilling) error {
		if b.Change == nil || b.Change.Seq < sc.Seq {
			b.Change = &sc
		}
		return nil
	}); err != nil {
		s.log.Warn("state_change_not_kept", "contract_id", c.ID, "err", err)
	}
	s.log.Info("contract_billing_state", "contract_id", c.ID, "twin_id", c.TwinID, "state", state, "due", b.Due)
	if c.NodeID != 0 {
		s.publishState(ctx, c, sc)
	}
	return true, nil
}

// publishState sends a contract's signed state change on its node's
// events subject.
func (s *Service) publishState(ctx context.Context, c Contract, sc billing.StateChange) {
	ev := Event{Kind: EventContractState, NodeID: c.NodeID, Contract: &c, State: &sc, Time: s.cfg.Now().UTC()}
	b, err := json.Marshal(ev)
	if err == nil {
		_, err = s.st.js.Publish(ctx, fmt.Sprintf(eventSubjectFmt, c.NodeID), b)
	}
	if err != nil {
		s.log.Error("event_publish_failed", "kind", EventContractState, "node_id", c.NodeID, "err", err)
	}
}
