package registry

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/identity"
)

// clock is a settable clock shared by a service and its clients.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// billingGrid is a single-server registry with billing, on a settable
// clock; twin 1 (the first user made) is the treasury.
type billingGrid struct {
	*grid
	clk      *clock
	key      ed25519.PrivateKey
	treasury *user
}

func newBillingGrid(t *testing.T, grace time.Duration) *billingGrid {
	t.Helper()
	seed := make([]byte, 32)
	seed[0] = 7
	key, err := DeriveBillingKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	srv := startServer(t)
	nc := connect(t, srv.ClientURL())
	svc := startService(t, nc, Config{Replicas: 1, Now: clk.Now,
		Billing: BillingConfig{Key: key, TreasuryTwins: []uint32{1}, Grace: grace}})
	g := &billingGrid{grid: &grid{srv: srv, nc: nc, svc: svc}, clk: clk, key: key}
	g.treasury = g.user(t)
	if g.treasury.twin.ID != 1 {
		t.Fatalf("treasury got twin %d, want 1", g.treasury.twin.ID)
	}
	return g
}

// user makes a twin whose client follows the grid's clock.
func (g *billingGrid) user(t testing.TB) *user {
	t.Helper()
	u := g.grid.user(t)
	u.c = NewClient(g.nc, u.key, WithClock(g.clk.Now))
	return u
}

func (g *billingGrid) farmWithNode(t *testing.T, name string, ips int) (farmer *user, farm Farm, nodeUser *user, node Node) {
	t.Helper()
	farmer, farm, nodeUser, node = g.grid.farmWithNode(t, name, ips)
	farmer.c = NewClient(g.nc, farmer.key, WithClock(g.clk.Now))
	nodeUser.c = NewClient(g.nc, nodeUser.key, WithClock(g.clk.Now))
	return farmer, farm, nodeUser, node
}

// checkLedger fails unless the twin's ledger has the entries 1..Seq and
// sums to its balance, which is not negative.
func checkLedger(t testing.TB, c *Client, twin uint32) Account {
	t.Helper()
	ctx := context.Background()
	a, err := c.Balance(ctx, twin)
	if err != nil {
		t.Fatalf("balance of twin %d: %v", twin, err)
	}
	es, err := c.Ledger(ctx, twin)
	if err != nil {
		t.Fatalf("ledger of twin %d: %v", twin, err)
	}
	var sum int64
	for i, e := range es {
		if e.Seq != uint64(i+1) {
			t.Fatalf("twin %d: entry %d has seq %d, want %d", twin, i, e.Seq, i+1)
		}
		sum += e.Amount
		if e.Balance != sum {
			t.Fatalf("twin %d: entry %d says balance %d, entries sum to %d", twin, e.Seq, e.Balance, sum)
		}
	}
	if uint64(len(es)) != a.Seq || sum != a.Balance || a.Balance < 0 {
		t.Fatalf("twin %d: %d entries summing to %d, account has seq %d balance %d", twin, len(es), sum, a.Seq, a.Balance)
	}
	return a
}

func TestDepositsOnlyByTreasury(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	u := g.user(t)
	// A twin that is not the treasury, even for itself.
	_, err := u.c.Deposit(ctx, u.twin.ID, 100)
	wantErr(t, "deposit by a non-treasury twin", err, ErrUnauthorized)
	// Unsigned: a client without a key, and a raw request with a bad
	// signature claiming the treasury's key.
	_, err = NewClient(g.nc, identity.Key{}).Deposit(ctx, u.twin.ID, 100)
	wantErr(t, "deposit without a key", err, ErrUnauthorized)
	attacker, _ := identity.Generate()
	raw := rawSignedRequest(attacker, g.treasury.key, OpBalanceDeposit, []byte(`{"twin_id":2,"amount":100}`))
	_, err = g.svc.handle(ctx, g.svc.handlers()[OpBalanceDeposit], OpBalanceDeposit, raw)
	wantErr(t, "deposit signed by another key", err, ErrBadSignature)
	// Bad amounts.
	for _, n := range []int64{0, -5, MaxAmount + 1} {
		_, err := g.treasury.c.Deposit(ctx, u.twin.ID, n)
		wantErr(t, "deposit of a bad amount", err, ErrInvalid)
	}
	if _, err := g.treasury.c.Deposit(ctx, 999, 10); err == nil {
		t.Fatal("deposit to a twin that does not exist: got no error")
	}
	// The treasury's deposit, then one that would overflow.
	if _, err := g.treasury.c.Deposit(ctx, u.twin.ID, MaxAmount); err != nil {
		t.Fatal(err)
	}
	_, err = g.treasury.c.Deposit(ctx, u.twin.ID, 1)
	wantErr(t, "deposit over MaxAmount", err, ErrOverflow)
	// A replayed deposit request.
	b, err := SignRequest(g.treasury.key, OpBalanceTransfer, transferReq{To: u.twin.ID, Amount: 1}, g.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.svc.handle(ctx, g.svc.handlers()[OpBalanceTransfer], OpBalanceTransfer, b); err == nil {
		t.Fatal("transfer from an empty balance: got no error")
	}
	_, err = g.svc.handle(ctx, g.svc.handlers()[OpBalanceTransfer], OpBalanceTransfer, b)
	wantErr(t, "replayed transfer", err, ErrReplay)
	a := checkLedger(t, u.c, u.twin.ID)
	if a.Balance != MaxAmount || a.Seq != 1 {
		t.Fatalf("got balance %d in %d entries, want %d in 1", a.Balance, a.Seq, int64(MaxAmount))
	}
}

func TestTransfers(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	a, b := g.user(t), g.user(t)
	if _, err := g.treasury.c.Deposit(ctx, a.twin.ID, 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Transfer(ctx, b.twin.ID, 300); err != nil {
		t.Fatal(err)
	}
	_, err := a.c.Transfer(ctx, b.twin.ID, 701)
	wantErr(t, "transfer above the balance", err, ErrInsufficientFunds)
	_, err = a.c.Transfer(ctx, b.twin.ID, -1)
	wantErr(t, "negative transfer", err, ErrInvalid)
	_, err = a.c.Transfer(ctx, a.twin.ID, 1)
	wantErr(t, "transfer to oneself", err, ErrInvalid)
	if got := checkLedger(t, a.c, a.twin.ID).Balance; got != 700 {
		t.Fatalf("payer: got %d, want 700", got)
	}
	if got := checkLedger(t, a.c, b.twin.ID).Balance; got != 300 {
		t.Fatalf("payee: got %d, want 300", got)
	}
}

// report is a usage report of 1 core and 1 GB (half a CU, 50000 an hour).
func report(node uint32, contract uint64, start, end int64) billing.UsageReport {
	return billing.UsageReport{NodeID: node, ContractID: contract, Start: start, End: end, CRU: 1, MRU: 1 << 30}
}

func TestUsageReportsRefused(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	_, _, nodeUser, node := g.farmWithNode(t, "farm1", 0)
	_, _, otherNodeUser, otherNode := g.farmWithNode(t, "farm2", 0)
	tenant := g.user(t)
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "ab", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := c.Created.Unix()
	good := report(node.ID, c.ID, t0, t0+10)
	h := g.svc.handlers()[OpUsageReport]

	// Forged: claims the node's key, signed by another.
	attacker, _ := identity.Generate()
	p, err := json.Marshal(usageReportReq{Reports: []billing.UsageReport{good}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.svc.handle(ctx, h, OpUsageReport, rawSignedRequest(attacker, nodeUser.key, OpUsageReport, p))
	wantErr(t, "forged report", err, ErrBadSignature)
	// Foreign: another node's twin reports this node's contract, as
	// itself and as this node.
	err = otherNodeUser.c.ReportUsage(ctx, []billing.UsageReport{good})
	wantErr(t, "report by another node", err, ErrUnauthorized)
	err = otherNodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(otherNode.ID, c.ID, t0, t0+10)})
	wantErr(t, "report of another node's contract", err, ErrUnauthorized)
	// The tenant is no node.
	err = tenant.c.ReportUsage(ctx, []billing.UsageReport{good})
	wantErr(t, "report by the tenant", err, ErrUnauthorized)
	// Malformed, in the future, before the contract.
	err = nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, t0+10, t0)})
	wantErr(t, "empty window", err, ErrInvalid)
	err = nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, t0+3600, t0+3700)})
	wantErr(t, "future window", err, ErrInvalid)
	err = nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, t0-7200, t0-7100)})
	wantErr(t, "window before the contract", err, ErrInvalid)
	err = nodeUser.c.ReportUsage(ctx, nil)
	wantErr(t, "no reports", err, ErrInvalid)

	// The good one, signed once and sent twice: the resend is a replay.
	b, err := SignRequest(nodeUser.key, OpUsageReport, usageReportReq{Reports: []billing.UsageReport{good}}, g.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.svc.handle(ctx, h, OpUsageReport, b); err != nil {
		t.Fatalf("good report: %v", err)
	}
	_, err = g.svc.handle(ctx, h, OpUsageReport, b)
	wantErr(t, "replayed report", err, ErrReplay)
	// Signed again: the window is already reported.
	err = nodeUser.c.ReportUsage(ctx, []billing.UsageReport{good})
	wantErr(t, "report of a reported window", err, ErrExists)
	err = nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, t0+5, t0+20)})
	wantErr(t, "overlapping report", err, ErrExists)
	rec, _, err := g.svc.billingRecord(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Pending) != 1 || rec.ReportedEnd != t0+10 {
		t.Fatalf("got %d pending reports up to %d, want 1 up to %d", len(rec.Pending), rec.ReportedEnd, t0+10)
	}
}

// TestGapNotBilledLateReportOnce: a node that stops reporting is not
// billed for the gap; its late report is billed once.
func TestGapNotBilledLateReportOnce(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	farmer, _, nodeUser, node := g.farmWithNode(t, "farm1", 0)
	tenant := g.user(t)
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 1_000_000); err != nil {
		t.Fatal(err)
	}
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "ab", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	t0 := c.Created.Unix()
	// An hour reported, an hour of silence, then the node is back and
	// reports the hour after the gap late.
	g.clk.Advance(time.Hour)
	if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, t0, t0+3600)}); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(2 * time.Hour)
	late := report(node.ID, c.ID, t0+7200, t0+10800)
	if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{late}); err != nil {
		t.Fatal(err)
	}
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	// Sent again (the node did not see the answer): refused, and the
	// next run bills nothing more.
	err = nodeUser.c.ReportUsage(ctx, []billing.UsageReport{late})
	wantErr(t, "late report sent again", err, ErrExists)
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	bills, err := tenant.c.Bills(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(bills) != 1 || bills[0].Amount != 2*50000 || bills[0].Reports != 2 {
		t.Fatalf("got bills %+v, want one of 2 reports for %d (two hours of half a CU)", bills, 2*50000)
	}
	if got := checkLedger(t, tenant.c, tenant.twin.ID).Balance; got != 1_000_000-100000 {
		t.Fatalf("tenant: got %d, want %d", got, 1_000_000-100000)
	}
	// The farm gets 90%, the grid 10%.
	if got := checkLedger(t, tenant.c, farmer.twin.ID).Balance; got != 90000 {
		t.Fatalf("farmer: got %d, want 90000", got)
	}
	if got := checkLedger(t, tenant.c, GridAccount).Balance; got != 10000 {
		t.Fatalf("grid: got %d, want 10000", got)
	}
}

// TestGraceResumeGraceDeleted: a contract that cannot pay enters grace, a
// deposit resumes it, it runs out again and is deleted at the grace
// period's end; each change is signed by the billing key and reaches the
// node as an event.
func TestGraceResumeGraceDeleted(t *testing.T) {
	const grace = 2 * time.Hour
	g := newBillingGrid(t, grace)
	ctx := context.Background()
	_, farm, nodeUser, node := g.farmWithNode(t, "farm1", 1)
	tenant := g.user(t)
	info, err := tenant.c.GridInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := info.PublicBillingKey()
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(g.key.Public()) {
		t.Fatalf("grid info billing key %s is not the service's", info.BillingKey)
	}
	// Enough for one hour of half a CU (50000) and an IP (40000).
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 100000); err != nil {
		t.Fatal(err)
	}
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "ab", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	ev0, err := tenant.c.EventsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := c.Created.Unix()
	hour := func() {
		t.Helper()
		r := report(node.ID, c.ID, next, next+3600)
		r.PublicIPs = 1
		next += 3600
		g.clk.Advance(time.Hour)
		if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{r}); err != nil {
			t.Fatal(err)
		}
		if err := g.svc.BillOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantState := func(want string) {
		t.Helper()
		got, err := tenant.c.Contract(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.BillingState != want {
			t.Fatalf("contract billing state: got %q, want %q", got.BillingState, want)
		}
	}
	hour() // paid: 90000 of 100000
	wantState("")
	hour() // 90000 due, 10000 left: grace
	wantState(billing.StateGrace)
	// The deposit that pays resumes the contract at once.
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 80000); err != nil {
		t.Fatal(err)
	}
	wantState(billing.StateActive)
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	wantState(billing.StateActive)
	hour() // 0 left: grace again
	wantState(billing.StateGrace)
	hour() // an hour into grace: still there
	wantState(billing.StateGrace)
	g.clk.Advance(grace)
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := tenant.c.Contract(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateCanceled || got.BillingState != billing.StateOutOfFunds {
		t.Fatalf("after the grace period: got state %q/%q, want %q/%q", got.State, got.BillingState, StateCanceled, billing.StateOutOfFunds)
	}
	f, err := tenant.c.Farm(ctx, farm.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range f.PublicIPs {
		if ip.ContractID != 0 {
			t.Fatalf("ip %s still held by contract %d", ip.IP, ip.ContractID)
		}
	}
	// Reports of time after the deletion are refused.
	end := got.Updated.Unix()
	err = nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, end, end+30)})
	wantErr(t, "report after deletion", err, ErrCanceled)
	// The node saw four signed changes, in order.
	p, err := nodeUser.c.FetchEvents(ctx, node.ID, ev0.LastSeq, 0)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	var seq uint64
	for _, ev := range p.Events {
		if ev.Kind != EventContractState {
			continue
		}
		if ev.State == nil {
			t.Fatal("contract_state event without a state change")
		}
		if err := billing.Verify(*ev.State, pub); err != nil {
			t.Fatalf("state change %+v: %v", *ev.State, err)
		}
		if ev.State.Seq <= seq || ev.State.ContractID != c.ID || ev.State.NodeID != node.ID {
			t.Fatalf("state change %+v after seq %d", *ev.State, seq)
		}
		seq = ev.State.Seq
		states = append(states, ev.State.State)
		// Signed by anything else, it does not verify.
		other, _ := identity.Generate()
		if err := billing.Verify(*ev.State, other.Public()); err == nil {
			t.Fatal("state change verifies under another key")
		}
	}
	// The last change is kept for a node that starts again.
	cb, err := nodeUser.c.ContractBilling(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Change == nil || cb.Change.State != billing.StateOutOfFunds || cb.Change.Seq != seq || billing.Verify(*cb.Change, pub) != nil {
		t.Fatalf("kept state change: got %+v, want the verified out_of_funds of seq %d", cb.Change, seq)
	}
	want := []string{billing.StateGrace, billing.StateActive, billing.StateGrace, billing.StateOutOfFunds}
	if len(states) != len(want) {
		t.Fatalf("got state changes %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("got state changes %v, want %v", states, want)
		}
	}
	checkLedger(t, tenant.c, tenant.twin.ID)
}

// TestBillingLease: one holder at a time; another takes over once it
// expires.
func TestBillingLease(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	ok, err := g.svc.acquireLease(ctx, "a", time.Minute)
	if err != nil || !ok {
		t.Fatalf("first holder: got %v, %v, want true", ok, err)
	}
	if ok, err := g.svc.acquireLease(ctx, "b", time.Minute); err != nil || ok {
		t.Fatalf("second holder while held: got %v, %v, want false", ok, err)
	}
	if ok, err := g.svc.acquireLease(ctx, "a", time.Minute); err != nil || !ok {
		t.Fatalf("renewal: got %v, %v, want true", ok, err)
	}
	g.clk.Advance(2 * time.Minute)
	if ok, err := g.svc.acquireLease(ctx, "b", time.Minute); err != nil || !ok {
		t.Fatalf("second holder after expiry: got %v, %v, want true", ok, err)
	}
	if ok, err := g.svc.acquireLease(ctx, "a", time.Minute); err != nil || ok {
		t.Fatalf("first holder after takeover: got %v, %v, want false", ok, err)
	}
}

// TestCanceledContractBilledOnce: a canceled contract's last usage is
// billed once, and nothing after its cancel.
func TestCanceledContractBilledOnce(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	_, _, nodeUser, node := g.farmWithNode(t, "farm1", 0)
	tenant := g.user(t)
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 1_000_000); err != nil {
		t.Fatal(err)
	}
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "ab", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	name, err := tenant.c.CreateNameContract(ctx, "canceled")
	if err != nil {
		t.Fatal(err)
	}
	t0 := c.Created.Unix()
	g.clk.Advance(2 * time.Hour)
	for _, id := range []uint64{c.ID, name.ID} {
		if err := tenant.c.CancelContract(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// The node reports the two hours before the cancel after it.
	if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, t0, t0+7200)}); err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(5 * time.Hour)
	for range 2 {
		if err := g.svc.BillOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		id   uint64
		want int64
	}{{c.ID, 2 * 50000}, {name.ID, 2 * 2500}} {
		bills, err := tenant.c.Bills(ctx, tt.id)
		if err != nil {
			t.Fatal(err)
		}
		if len(bills) != 1 || bills[0].Amount != tt.want {
			t.Fatalf("contract %d: got bills %+v, want one of %d", tt.id, bills, tt.want)
		}
	}
	if got := checkLedger(t, tenant.c, tenant.twin.ID).Balance; got != 1_000_000-100000-5000 {
		t.Fatalf("tenant: got %d, want %d", got, 1_000_000-100000-5000)
	}
}

// TestRentBilledForTheWholeNode: a rent contract pays the node's whole
// capacity by the hour; the renter's node contracts there pay only their
// public IPs and traffic.
func TestRentBilledForTheWholeNode(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	_, _, nodeUser, node := g.farmWithNode(t, "farm1", 1) // 4 cores, 8 GB: 2 CU
	renter := g.user(t)
	if _, err := g.treasury.c.Deposit(ctx, renter.twin.ID, 10_000_000); err != nil {
		t.Fatal(err)
	}
	rent, err := renter.c.CreateRentContract(ctx, node.ID)
	if err != nil {
		t.Fatal(err)
	}
	c, err := renter.c.CreateNodeContract(ctx, node.ID, "ab", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	t0 := c.Created.Unix()
	g.clk.Advance(time.Hour)
	r := report(node.ID, c.ID, t0, t0+3600)
	r.PublicIPs = 1
	if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{r}); err != nil {
		t.Fatal(err)
	}
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	rb, err := renter.c.Bills(ctx, rent.ID)
	if err != nil {
		t.Fatal(err)
	}
	// min(max(8/4, 4/2), max(1, 4), max(4, 1)) = 2 CU for an hour.
	if len(rb) != 1 || rb[0].Amount != 200000 {
		t.Fatalf("rent bills: got %+v, want one of 200000", rb)
	}
	cb, err := renter.c.Bills(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cb) != 1 || cb[0].Amount != 40000 {
		t.Fatalf("node contract bills on the rented node: got %+v, want one of 40000 (the IP)", cb)
	}
}

// TestTransferRecovered: a transfer left between its debit and its credit
// (a server stopped there) is credited once by the billing leader; one
// left before its debit is dropped, crediting nothing.
func TestTransferRecovered(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	a, b := g.user(t), g.user(t)
	if _, err := g.treasury.c.Deposit(ctx, a.twin.ID, 1000); err != nil {
		t.Fatal(err)
	}
	s := g.svc
	debited := pendingTransfer{Ref: "transfer:2:aa", From: a.twin.ID, To: b.twin.ID, Amount: 300, At: g.clk.Now().Unix()}
	notDebited := pendingTransfer{Ref: "transfer:2:bb", From: a.twin.ID, To: b.twin.ID, Amount: 400, At: g.clk.Now().Unix()}
	for _, pt := range []pendingTransfer{debited, notDebited} {
		if err := putJSON(ctx, s.st.index, pt.key(), 0, pt); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.apply(ctx, a.twin.ID, -300, EntryTransferOut, debited.Ref, b.twin.ID); err != nil {
		t.Fatal(err)
	}
	// Too recent: left alone (the request may still run).
	if err := s.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got := checkLedger(t, b.c, b.twin.ID).Balance; got != 0 {
		t.Fatalf("payee before the recovery: got %d, want 0", got)
	}
	g.clk.Advance(transferGrace + time.Second)
	for range 2 {
		if err := s.BillOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := checkLedger(t, b.c, b.twin.ID).Balance; got != 300 {
		t.Fatalf("payee: got %d, want 300", got)
	}
	if got := checkLedger(t, a.c, a.twin.ID).Balance; got != 700 {
		t.Fatalf("payer: got %d, want 700", got)
	}
	left, err := watchPrefix[pendingTransfer](ctx, s.st.index, "transfer.*")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("pending transfers left: %+v", left)
	}
}

// TestFarmPricing: a farm prices within the grid's bounds, only by its
// twin, and its contracts pay its prices.
func TestFarmPricing(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(t, "farm1", 0)
	tenant := g.user(t)
	info, err := tenant.c.GridInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.FarmBounds.Min.CU != DefaultPricing.CU/2 || info.FarmBounds.Max.CU != 2*DefaultPricing.CU {
		t.Fatalf("farm bounds: got %+v, want half to twice the grid's", info.FarmBounds)
	}
	cheap := Pricing{CU: 60000, SU: 50000, IPv4: 40000, NU: 15000}
	for _, tt := range []struct {
		name string
		c    *Client
		p    Pricing
		want error
	}{
		{"below the bounds", farmer.c, Pricing{CU: 1, SU: 50000, IPv4: 40000, NU: 15000}, ErrInvalid},
		{"above the bounds", farmer.c, Pricing{CU: 60000, SU: 50000, IPv4: 40000, NU: 1 << 40}, ErrInvalid},
		{"negative", farmer.c, Pricing{CU: -1}, ErrInvalid},
		{"not the farm's twin", tenant.c, cheap, ErrUnauthorized},
	} {
		_, err := tt.c.SetFarmPricing(ctx, farm.ID, &tt.p)
		wantErr(t, tt.name, err, tt.want)
	}
	f, err := farmer.c.SetFarmPricing(ctx, farm.ID, &Pricing{CU: 60000, SU: 50000, IPv4: 40000, NU: 15000, Name: 1, GridShare: 99})
	if err != nil {
		t.Fatal(err)
	}
	if *f.Pricing != cheap {
		t.Fatalf("farm pricing: got %+v, want %+v (names and the grid's share are the grid's)", *f.Pricing, cheap)
	}
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 1_000_000); err != nil {
		t.Fatal(err)
	}
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "ab", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	g.clk.Advance(time.Hour)
	if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{report(node.ID, c.ID, c.Created.Unix(), c.Created.Unix()+3600)}); err != nil {
		t.Fatal(err)
	}
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	bills, err := tenant.c.Bills(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(bills) != 1 || bills[0].Amount != 30000 {
		t.Fatalf("bills at the farm's price: got %+v, want one of 30000 (half a CU at 60000)", bills)
	}
}

// TestTwinGraceCoversAllContracts: a contract too small to be billed yet
// (no usage reported) goes to grace with the twin's contract that cannot
// pay, stays there while that one owes, resumes with it when a deposit
// pays, and is deleted with it at the grace period's end.
func TestTwinGraceCoversAllContracts(t *testing.T) {
	const grace = 2 * time.Hour
	g := newBillingGrid(t, grace)
	ctx := context.Background()
	_, _, nodeUser, node := g.farmWithNode(t, "farm1", 1)
	tenant := g.user(t)
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 100000); err != nil {
		t.Fatal(err)
	}
	big, err := tenant.c.CreateNodeContract(ctx, node.ID, "ab", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	small, err := tenant.c.CreateNodeContract(ctx, node.ID, "cd", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	other := g.user(t) // another twin's contract is never touched
	if _, err := g.treasury.c.Deposit(ctx, other.twin.ID, 100); err != nil {
		t.Fatal(err)
	}
	foreign, err := other.c.CreateNodeContract(ctx, node.ID, "ef", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	next := big.Created.Unix()
	hour := func() {
		t.Helper()
		r := report(node.ID, big.ID, next, next+3600)
		r.PublicIPs = 1
		next += 3600
		g.clk.Advance(time.Hour)
		if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{r}); err != nil {
			t.Fatal(err)
		}
		if err := g.svc.BillOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wantStates := func(when, wantBig, wantSmall string) {
		t.Helper()
		for _, w := range []struct {
			c    *Client
			id   uint64
			want string
		}{{tenant.c, big.ID, wantBig}, {tenant.c, small.ID, wantSmall}, {other.c, foreign.ID, ""}} {
			got, err := w.c.Contract(ctx, w.id)
			if err != nil {
				t.Fatal(err)
			}
			if got.BillingState != w.want {
				t.Fatalf("%s: contract %d: got billing state %q, want %q", when, w.id, got.BillingState, w.want)
			}
		}
	}
	hour()
	wantStates("paid", "", "")
	hour()
	wantStates("cannot pay", billing.StateGrace, billing.StateGrace)
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	wantStates("the next run, still owing", billing.StateGrace, billing.StateGrace)
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 80000); err != nil {
		t.Fatal(err)
	}
	wantStates("paid by a deposit", billing.StateActive, billing.StateActive)
	hour()
	wantStates("cannot pay again", billing.StateGrace, billing.StateGrace)
	g.clk.Advance(grace)
	if err := g.svc.BillOnce(ctx); err != nil {
		t.Fatal(err)
	}
	wantStates("the grace period's end", billing.StateOutOfFunds, billing.StateOutOfFunds)
	got, err := tenant.c.Contract(ctx, small.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != StateCanceled {
		t.Fatalf("the small contract after the grace period: got state %q, want %q", got.State, StateCanceled)
	}
	checkLedger(t, tenant.c, tenant.twin.ID)
}

// TestSmallReportsCarried: reports that each cost less than a unit are not
// rounded away one by one: the fraction is carried from bill to bill, so
// the bills add up to the reports' exact total, rounded down once.
func TestSmallReportsCarried(t *testing.T) {
	g := newBillingGrid(t, time.Hour)
	ctx := context.Background()
	_, _, nodeUser, node := g.farmWithNode(t, "farm1", 0)
	tenant := g.user(t)
	if _, err := g.treasury.c.Deposit(ctx, tenant.twin.ID, 1_000_000); err != nil {
		t.Fatal(err)
	}
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "ab", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	// 32 KiB of traffic at 15000 a GiB: 15000/32768 of a unit each.
	const reports = 8
	t0 := c.Created.Unix()
	for i := range int64(reports) {
		g.clk.Advance(time.Minute)
		r := billing.UsageReport{NodeID: node.ID, ContractID: c.ID, Start: t0 + 60*i, End: t0 + 60*(i+1), NetBytes: 32 << 10}
		if err := nodeUser.c.ReportUsage(ctx, []billing.UsageReport{r}); err != nil {
			t.Fatal(err)
		}
		if err := g.svc.BillOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	bills, err := tenant.c.Bills(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, b := range bills {
		sum += b.Amount
	}
	// 8 * 15000/32768 = 3.66: 3 billed in all (each alone would be 0).
	if want := int64(reports * 15000 / 32768); sum != want || len(bills) != reports {
		t.Fatalf("got %d bills summing to %d, want %d bills summing to %d", len(bills), sum, reports, want)
	}
	if got := checkLedger(t, tenant.c, tenant.twin.ID).Balance; got != 1_000_000-sum {
		t.Fatalf("tenant: got %d, want %d", got, 1_000_000-sum)
	}
}
