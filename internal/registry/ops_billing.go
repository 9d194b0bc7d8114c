package registry

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/billing"
)

// Billing operations (balances, usage reports, bills, the grid's billing
// key and pricing).
const (
	// OpBalanceDeposit credits a twin; signed by a treasury twin
	// (BillingConfig.TreasuryTwins), standing in for token transfers.
	OpBalanceDeposit = "balance.deposit"
	// OpBalanceTransfer moves an amount from the signer's twin to another.
	OpBalanceTransfer = "balance.transfer"
	// OpUsageReport takes a batch of billing.UsageReport, signed by the
	// twin of the node the contracts run on.
	OpUsageReport = "usage.report"

	OpBalanceGet    = "balance.get"
	OpLedgerList    = "ledger.list"
	OpContractBills = "contract.bills"
	OpGridInfo      = "grid.info"
	// OpContractBilling reads a contract's billing record: what is due,
	// its billing state and the last signed state change.
	OpContractBilling = "contract.billing"
)

// MaxReportsPerRequest bounds one usage.report batch; maxPending bounds
// the reports of one contract waiting for the next bill.
const (
	MaxReportsPerRequest = 256
	maxPending           = 2048
)

// BillingConfig configures balances and billing.
type BillingConfig struct {
	// Key is the grid's billing key: it signs the contracts' state
	// changes (DeriveBillingKey of the system key, so every member of a
	// cluster has it). Without it the billing loop does not run.
	Key ed25519.PrivateKey
	// TreasuryTwins may deposit (zgrid --treasury-twins).
	TreasuryTwins []uint32
	// Pricing is the grid's pricing policy (default DefaultPricing).
	Pricing *Pricing
	// Period is how often the leader bills (default an hour); Grace how
	// long a contract that cannot pay stays in grace before it is
	// deleted (default 14 days, tfchain's).
	Period time.Duration
	Grace  time.Duration
	// Bounds are the prices a farm may set (default half to twice the
	// grid's).
	Bounds *PricingBounds
}

// Validate checks the configuration.
func (c BillingConfig) Validate() error {
	if c.Key != nil && len(c.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("billing key of %d bytes", len(c.Key))
	}
	if c.Period < 0 || c.Grace < 0 {
		return errors.New("negative billing period or grace period")
	}
	if c.Pricing != nil {
		return c.Pricing.Validate()
	}
	return nil
}

func (c BillingConfig) withDefaults() BillingConfig {
	if c.Pricing == nil {
		p := DefaultPricing
		c.Pricing = &p
	}
	if c.Bounds == nil {
		b := defaultBounds(*c.Pricing)
		c.Bounds = &b
	}
	if c.Period == 0 {
		c.Period = time.Hour
	}
	if c.Grace == 0 {
		c.Grace = 14 * 24 * time.Hour
	}
	return c
}

// labelBillingKey is the HKDF label of the billing key: no other value
// derived from the system key (natsd's route credentials) tells anything
// about it.
const labelBillingKey = "zos grid billing key v1"

// DeriveBillingKey derives the grid's billing key from secret, the seed of
// the grid's system key every cluster member holds (HKDF-SHA256 with its
// own label). Nodes pin its public key (GridInfo) and verify every state
// change with it.
func DeriveBillingKey(secret []byte) (ed25519.PrivateKey, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("billing key secret of %d bytes: want at least 32", len(secret))
	}
	seed, err := hkdf.Key(sha256.New, secret, nil, labelBillingKey, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("deriving billing key: %w", err)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// Payloads.

type depositReq struct {
	TwinID uint32 `json:"twin_id"`
	Amount int64  `json:"amount"`
}

type transferReq struct {
	To     uint32 `json:"to"`
	Amount int64  `json:"amount"`
}

type usageReportReq struct {
	Reports []billing.UsageReport `json:"reports"`
}

type twinReq struct {
	TwinID uint32 `json:"twin_id"`
	After  uint64 `json:"after,omitempty"`
}

// GridInfo is what a grid says of itself: the public billing key nodes
// pin, and its pricing.
type GridInfo struct {
	BillingKey  string  `json:"billing_key"` // hex ed25519 public key
	Pricing     Pricing `json:"pricing"`
	GracePeriod int64   `json:"grace_period_seconds"`
	// FarmBounds are the prices a farm may set instead of the grid's.
	FarmBounds PricingBounds `json:"farm_bounds"`
}

// checkAmount refuses amounts outside 1..MaxAmount.
func checkAmount(n int64) error {
	if n <= 0 || n > MaxAmount {
		return fmt.Errorf("%w: amount %d, want 1..%d", ErrInvalid, n, int64(MaxAmount))
	}
	return nil
}

func (s *Service) balanceDeposit(ctx context.Context, w *signedRequest, req depositReq) (any, error) {
	if err := checkAmount(req.Amount); err != nil {
		return nil, err
	}
	signer, err := s.signerTwin(ctx, w.Key)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(s.cfg.Billing.TreasuryTwins, signer.ID) {
		return nil, fmt.Errorf("%w: twin %d is not a treasury twin", ErrUnauthorized, signer.ID)
	}
	if _, err := s.twinByID(ctx, uint64(req.TwinID), false); err != nil {
		return nil, fmt.Errorf("depositing: %w", err)
	}
	e, _, err := s.apply(ctx, req.TwinID, req.Amount, EntryDeposit, "deposit:"+w.Nonce, signer.ID)
	if err != nil {
		return nil, fmt.Errorf("depositing to twin %d: %w", req.TwinID, err)
	}
	s.resumeTwin(ctx, req.TwinID)
	return e, nil
}

func (s *Service) balanceTransfer(ctx context.Context, w *signedRequest, req transferReq) (any, error) {
	if err := checkAmount(req.Amount); err != nil {
		return nil, err
	}
	payer, err := s.signerTwin(ctx, w.Key)
	if err != nil {
		return nil, err
	}
	if req.To == payer.ID {
		return nil, fmt.Errorf("%w: transfer to the payer's own twin", ErrInvalid)
	}
	if _, err := s.twinByID(ctx, uint64(req.To), false); err != nil {
		return nil, fmt.Errorf("transferring: %w", err)
	}
	pt := pendingTransfer{Ref: fmt.Sprintf("transfer:%d:%s", payer.ID, w.Nonce), From: payer.ID, To: req.To,
		Amount: req.Amount, At: s.cfg.Now().Unix()}
	// Written before the debit: if this server stops between the debit
	// and the credit, the billing leader finishes the transfer
	// (recoverTransfers).
	if err := putJSON(ctx, s.st.index, pt.key(), 0, pt); err != nil {
		return nil, fmt.Errorf("transferring from twin %d: %w", payer.ID, err)
	}
	e, _, err := s.apply(ctx, payer.ID, -req.Amount, EntryTransferOut, pt.Ref, req.To)
	if err != nil {
		s.dropTransfer(ctx, pt)
		return nil, fmt.Errorf("transferring from twin %d: %w", payer.ID, err)
	}
	if err := s.creditTransfer(ctx, pt); err != nil {
		s.log.Error("transfer_credit_deferred", "from", payer.ID, "to", req.To, "amount", req.Amount, "ref", pt.Ref, "err", err)
	} else {
		s.resumeTwin(ctx, req.To)
	}
	return e, nil
}

// pendingTransfer is a transfer between its debit and its credit, kept in
// the index bucket (transfer.<ref>).
type pendingTransfer struct {
	Ref    string `json:"ref"`
	From   uint32 `json:"from"`
	To     uint32 `json:"to"`
	Amount int64  `json:"amount"`
	At     int64  `json:"at"` // unix s
}

func (p pendingTransfer) key() string { return "transfer." + strings.ReplaceAll(p.Ref, ":", "_") }

// creditTransfer credits the payee of a debited transfer (once, by its
// ref) and drops the pending record.
func (s *Service) creditTransfer(ctx context.Context, pt pendingTransfer) error {
	var err error
	for range 3 {
		if _, _, err = s.apply(ctx, pt.To, pt.Amount, EntryTransferIn, pt.Ref, pt.From); err == nil {
			s.dropTransfer(ctx, pt)
			return nil
		}
	}
	return err
}

func (s *Service) dropTransfer(ctx context.Context, pt pendingTransfer) {
	if err := s.st.index.Delete(ctx, pt.key()); err != nil {
		s.log.Warn("transfer_record_left", "ref", pt.Ref, "err", err)
	}
}

// transferGrace is how old a pending transfer is before the billing
// leader finishes it (a live request ends within its 15 s).
const transferGrace = 2 * time.Minute

// recoverTransfers finishes the transfers a server left between debit and
// credit: credited when the payer's ledger has the debit, dropped when it
// does not.
func (s *Service) recoverTransfers(ctx context.Context) error {
	pts, err := watchPrefix[pendingTransfer](ctx, s.st.index, "transfer.*")
	if err != nil {
		return err
	}
	now := s.cfg.Now().Unix()
	var errs []error
	for _, pt := range pts {
		if now-pt.At < int64(transferGrace/time.Second) {
			continue
		}
		debited, err := s.hasRef(ctx, pt.From, pt.Ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !debited {
			s.dropTransfer(ctx, pt)
			continue
		}
		s.log.Warn("transfer_recovered", "ref", pt.Ref, "from", pt.From, "to", pt.To, "amount", pt.Amount)
		if err := s.creditTransfer(ctx, pt); err != nil {
			errs = append(errs, fmt.Errorf("finishing transfer %s: %w", pt.Ref, err))
		}
	}
	return errors.Join(errs...)
}

// hasRef reports whether a twin's balance changed with ref.
func (s *Service) hasRef(ctx context.Context, twin uint32, ref string) (bool, error) {
	a, _, err := s.account(ctx, twin)
	if err != nil {
		return false, err
	}
	if slices.Contains(a.Refs, ref) {
		return true, nil
	}
	es, err := s.ledger(ctx, twin, 0)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(es, func(e LedgerEntry) bool { return e.Ref == ref }), nil
}

func (s *Service) balanceGet(ctx context.Context, _ *signedRequest, req twinReq) (any, error) {
	a, _, err := s.account(ctx, req.TwinID)
	if err != nil {
		return nil, err
	}
	a.Refs = nil
	return a, nil
}

func (s *Service) ledgerList(ctx context.Context, _ *signedRequest, req twinReq) (any, error) {
	es, err := s.ledger(ctx, req.TwinID, req.After)
	if err != nil {
		return nil, err
	}
	return page(es)
}

func (s *Service) contractBills(ctx context.Context, _ *signedRequest, req getReq) (any, error) {
	if _, err := s.contract(ctx, req.ID); err != nil {
		return nil, err
	}
	if rec, _, err := s.billingRecord(ctx, req.ID); err == nil {
		s.persistBill(ctx, &rec)
	}
	bills, err := watchPrefix[Bill](ctx, s.st.bills, fmt.Sprintf("%d.*", req.ID))
	if err != nil {
		return nil, err
	}
	sort.Slice(bills, func(i, j int) bool { return bills[i].Seq < bills[j].Seq })
	if bills == nil {
		bills = []Bill{}
	}
	return bills, nil
}

func (s *Service) contractBilling(ctx context.Context, _ *signedRequest, req getReq) (any, error) {
	if _, err := s.contract(ctx, req.ID); err != nil {
		return nil, err
	}
	b, _, err := s.billingRecord(ctx, req.ID)
	if err != nil {
		return nil, err
	}
	b.Pending = nil
	return b, nil
}

func (s *Service) gridInfo(context.Context, *signedRequest, struct{}) (any, error) {
	info := GridInfo{Pricing: *s.cfg.Billing.Pricing, GracePeriod: int64(s.cfg.Billing.Grace / time.Second),
		FarmBounds: *s.cfg.Billing.Bounds}
	if k := s.cfg.Billing.Key; k != nil {
		info.BillingKey = hex.EncodeToString(k.Public().(ed25519.PublicKey))
	}
	return info, nil
}

// usageReport accepts a batch of reports of the signer's node: each for a
// node contract of that node, for time after the contract's last reported
// window (ErrExists when it overlaps it: already reported).
func (s *Service) usageReport(ctx context.Context, w *signedRequest, req usageReportReq) (any, error) {
	if len(req.Reports) == 0 || len(req.Reports) > MaxReportsPerRequest {
		return nil, fmt.Errorf("%w: %d reports, want 1..%d", ErrInvalid, len(req.Reports), MaxReportsPerRequest)
	}
	signer, err := s.signerTwin(ctx, w.Key)
	if err != nil {
		return nil, err
	}
	nodeID, err := s.st.indexGet(ctx, fmt.Sprintf("nodetwin.%d", signer.ID))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: twin %d has no node", ErrUnauthorized, signer.ID)
	}
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now().Unix()
	skew := int64(s.cfg.MaxSkew / time.Second)
	byContract := map[uint64][]billing.UsageReport{}
	for _, r := range req.Reports {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if uint64(r.NodeID) != nodeID {
			return nil, fmt.Errorf("%w: report for node %d signed by the twin of node %d", ErrUnauthorized, r.NodeID, nodeID)
		}
		if r.End > now+skew {
			return nil, fmt.Errorf("%w: usage of contract %d ends at %d, in the future", ErrInvalid, r.ContractID, r.End)
		}
		byContract[r.ContractID] = append(byContract[r.ContractID], r)
	}
	ids := make([]uint64, 0, len(byContract))
	for id, rs := range byContract {
		c, err := s.contract(ctx, id)
		if err != nil {
			return nil, err
		}
		if c.Type != TypeNode || uint64(c.NodeID) != nodeID {
			return nil, fmt.Errorf("%w: contract %d is not a node contract of node %d", ErrUnauthorized, id, nodeID)
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
		for i, r := range rs {
			if r.Start < c.Created.Unix()-skew {
				return nil, fmt.Errorf("%w: usage of contract %d from %d, before it was created", ErrInvalid, id, r.Start)
			}
			if c.State == StateCanceled && r.Start >= c.Updated.Unix() {
				return nil, fmt.Errorf("%w: usage of contract %d from %d, after it ended", ErrCanceled, id, r.Start)
			}
			if i > 0 && r.Start < rs[i-1].End {
				return nil, fmt.Errorf("%w: reports of contract %d overlap", ErrInvalid, id)
			}
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	accepted := 0
	for _, id := range ids {
		rs := byContract[id]
		_, err := s.updateBilling(ctx, id, func(b *ContractBilling) error {
			if rs[0].Start < b.ReportedEnd {
				return fmt.Errorf("%w: usage of contract %d up to %d is already reported (report from %d)", ErrExists, id, b.ReportedEnd, rs[0].Start)
			}
			if len(b.Pending)+len(rs) > maxPending {
				return fmt.Errorf("%w: contract %d has %d reports waiting for a bill", ErrBusy, id, len(b.Pending))
			}
			b.Pending = append(b.Pending, rs...)
			b.ReportedEnd = rs[len(rs)-1].End
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("reporting usage (%d of %d reports taken): %w", accepted, len(req.Reports), err)
		}
		accepted += len(rs)
	}
	return struct {
		Accepted int `json:"accepted"`
	}{accepted}, nil
}

// Client side.

// Deposit credits a twin (by a treasury twin).
func (c *Client) Deposit(ctx context.Context, twin uint32, amount int64) (LedgerEntry, error) {
	return writeOne[LedgerEntry](ctx, c, OpBalanceDeposit, depositReq{TwinID: twin, Amount: amount})
}

// Transfer moves amount from the client's twin to another twin; it
// returns the payer's entry.
func (c *Client) Transfer(ctx context.Context, to uint32, amount int64) (LedgerEntry, error) {
	return writeOne[LedgerEntry](ctx, c, OpBalanceTransfer, transferReq{To: to, Amount: amount})
}

// ReportUsage reports the usage of contracts of the client's node (by the
// node's twin). A window already reported is refused with ErrExists.
func (c *Client) ReportUsage(ctx context.Context, reports []billing.UsageReport) error {
	return c.write(ctx, OpUsageReport, usageReportReq{Reports: reports}, nil)
}

// Balance returns a twin's account (GridAccount: the grid's).
func (c *Client) Balance(ctx context.Context, twin uint32) (Account, error) {
	return readOne[Account](ctx, c, OpBalanceGet, twinReq{TwinID: twin})
}

// Ledger returns a twin's ledger, oldest first.
func (c *Client) Ledger(ctx context.Context, twin uint32) ([]LedgerEntry, error) {
	var all []LedgerEntry
	req := twinReq{TwinID: twin}
	for {
		var p listPage[LedgerEntry]
		if err := c.read(ctx, OpLedgerList, req, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if !p.More || len(p.Items) == 0 {
			return all, nil
		}
		req.After = p.Items[len(p.Items)-1].Seq
	}
}

// Bills returns the bills of a contract, oldest first.
func (c *Client) Bills(ctx context.Context, contract uint64) ([]Bill, error) {
	return readOne[[]Bill](ctx, c, OpContractBills, getReq{ID: contract})
}

// ContractBilling returns a contract's billing record (without its
// pending reports): what it owes, its billing state, and the last signed
// state change (nil: never changed), which a node verifies with
// billing.Verify before re-applying it.
func (c *Client) ContractBilling(ctx context.Context, contract uint64) (ContractBilling, error) {
	return readOne[ContractBilling](ctx, c, OpContractBilling, getReq{ID: contract})
}

// GridInfo returns the grid's billing key and pricing.
func (c *Client) GridInfo(ctx context.Context) (GridInfo, error) {
	return readOne[GridInfo](ctx, c, OpGridInfo, struct{}{})
}

// BillingKey returns the grid's billing public key, for nodes to pin.
func (i GridInfo) PublicBillingKey() (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(i.BillingKey)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: billing key %q", ErrInvalid, i.BillingKey)
	}
	return ed25519.PublicKey(b), nil
}
