package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// GridAccount is the account of the grid itself (its share of payments):
// twin id 0, which no twin has.
const GridAccount uint32 = 0

// Kinds of ledger entries.
const (
	EntryDeposit     = "deposit"
	EntryTransferIn  = "transfer_in"
	EntryTransferOut = "transfer_out"
	EntryBill        = "bill"       // a twin pays a contract's bill
	EntryPayout      = "payout"     // the farm's part of a bill
	EntryGridShare   = "grid_share" // the grid's part of a bill
)

// LedgerEntry is one change of a twin's balance. A twin's entries have
// the sequences 1..Account.Seq, and their amounts sum to its balance.
type LedgerEntry struct {
	TwinID  uint32    `json:"twin_id"`
	Seq     uint64    `json:"seq"`
	Amount  int64     `json:"amount"`  // signed
	Balance int64     `json:"balance"` // after this entry
	Kind    string    `json:"kind"`
	Ref     string    `json:"ref,omitempty"`  // what it belongs to (a bill, a transfer)
	Peer    uint32    `json:"peer,omitempty"` // the other twin of a transfer or payout
	Time    time.Time `json:"time"`
}

// Account is a twin's balance, changed only by compare-and-set: two
// writers never spend the same balance. Last is the newest entry, kept
// here so that the change and its entry are one write; it is copied to
// the ledger right after, or by the next writer or reader if that copy
// was lost.
type Account struct {
	TwinID  uint32       `json:"twin_id"`
	Balance int64        `json:"balance"`
	Seq     uint64       `json:"seq"`
	Last    *LedgerEntry `json:"last,omitempty"`
	// Refs are the refs of the newest entries (at most maxRefs): a
	// change with one of them is applied once only (a bill paid again
	// after a restart).
	Refs []string `json:"refs,omitempty"`
}

// maxRefs bounds Account.Refs.
const maxRefs = 256

func ledgerKey(twin uint32, seq uint64) string { return fmt.Sprintf("%d.%020d", twin, seq) }

// persistLast copies an account's last entry to the ledger (once).
func (s *Service) persistLast(ctx context.Context, a *Account) error {
	if a.Last == nil {
		return nil
	}
	// A read first: usually it is there already (a write would cost a
	// round of the stream's replicas).
	if _, err := s.st.ledger.Get(ctx, ledgerKey(a.TwinID, a.Last.Seq)); err == nil {
		return nil
	}
	err := putJSON(ctx, s.st.ledger, ledgerKey(a.TwinID, a.Last.Seq), 0, a.Last)
	if err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("writing ledger entry %d of twin %d: %w", a.Last.Seq, a.TwinID, err)
	}
	return nil
}

// account reads a twin's account (an empty one when it has none).
func (s *Service) account(ctx context.Context, twin uint32) (Account, uint64, error) {
	var a Account
	rev, err := getJSON(ctx, s.st.accounts, idKey(uint64(twin)), &a)
	if errors.Is(err, ErrNotFound) {
		return Account{TwinID: twin}, 0, nil
	}
	return a, rev, err
}

// apply adds amount (negative: takes it) to a twin's balance with one
// entry of kind. A ref already applied to the account is not applied
// again (applied false). A balance never goes below zero
// (ErrInsufficientFunds) nor above MaxAmount (ErrOverflow).
func (s *Service) apply(ctx context.Context, twin uint32, amount int64, kind, ref string, peer uint32) (e LedgerEntry, applied bool, err error) {
	if amount == 0 || amount > MaxAmount || amount < -MaxAmount {
		return e, false, fmt.Errorf("%w: amount %d, want 1..%d either way", ErrInvalid, amount, int64(MaxAmount))
	}
	for i := range casRetries {
		a, rev, err := s.account(ctx, twin)
		if err != nil {
			return e, false, err
		}
		// The entry of the previous change first: the ledger never misses
		// one, whoever wrote it.
		if err := s.persistLast(ctx, &a); err != nil {
			return e, false, err
		}
		if ref != "" && slices.Contains(a.Refs, ref) {
			return e, false, nil
		}
		if amount < 0 && a.Balance+amount < 0 {
			return e, false, fmt.Errorf("%w: twin %d has %d, %d asked", ErrInsufficientFunds, twin, a.Balance, -amount)
		}
		bal, err := addAmount(a.Balance, amount)
		if err != nil {
			return e, false, fmt.Errorf("balance of twin %d: %w", twin, err)
		}
		a.Seq++
		a.Balance = bal
		e = LedgerEntry{TwinID: twin, Seq: a.Seq, Amount: amount, Balance: bal, Kind: kind, Ref: ref, Peer: peer, Time: s.cfg.Now().UTC()}
		a.Last = &e
		if ref != "" {
			a.Refs = append(a.Refs, ref)
			if len(a.Refs) > maxRefs {
				a.Refs = slices.Clone(a.Refs[len(a.Refs)-maxRefs:])
			}
		}
		err = putJSON(ctx, s.st.accounts, idKey(uint64(twin)), rev, &a)
		if errors.Is(err, errConflict) || (rev == 0 && errors.Is(err, ErrExists)) {
			backoff(i)
			continue
		}
		if err != nil {
			return LedgerEntry{}, false, err
		}
		if err := s.persistLast(ctx, &a); err != nil {
			// Committed: the next change or read of the account writes it.
			s.log.Warn("ledger_entry_deferred", "twin_id", twin, "seq", a.Seq, "err", err)
		}
		return e, true, nil
	}
	return LedgerEntry{}, false, fmt.Errorf("changing balance of twin %d: %w", twin, errConflict)
}

// ledger returns a twin's entries after seq, in order, copying the
// account's last entry to the ledger first when it is missing there.
func (s *Service) ledger(ctx context.Context, twin uint32, after uint64) ([]LedgerEntry, error) {
	a, _, err := s.account(ctx, twin)
	if err != nil {
		return nil, err
	}
	if err := s.persistLast(ctx, &a); err != nil {
		return nil, err
	}
	out, err := watchPrefix[LedgerEntry](ctx, s.st.ledger, fmt.Sprintf("%d.*", twin))
	if err != nil {
		return nil, err
	}
	out = slices.DeleteFunc(out, func(e LedgerEntry) bool { return e.Seq <= after || e.Seq > a.Seq })
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// watchPrefix reads every record of kv whose key matches pattern.
func watchPrefix[T any](ctx context.Context, kv jetstream.KeyValue, pattern string) ([]T, error) {
	w, err := kv.Watch(ctx, pattern, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("reading %s/%s: %w", kv.Bucket(), pattern, err)
	}
	defer func() { _ = w.Stop() }()
	var out []T
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("reading %s/%s: %w", kv.Bucket(), pattern, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("reading %s/%s: watcher closed", kv.Bucket(), pattern)
			}
			if e == nil {
				return out, nil
			}
			var v T
			if err := json.Unmarshal(e.Value(), &v); err == nil {
				out = append(out, v)
			}
		}
	}
}
