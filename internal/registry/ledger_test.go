package registry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/testutil"
)

// TestLedgerSumsUnderConcurrency: 1,000 concurrent deposits, transfers,
// usage reports and billing runs leave every twin's ledger summing to its
// balance, no balance negative, and the total of the balances equal to
// the deposits (nothing spent twice, nothing lost).
func TestLedgerSumsUnderConcurrency(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv.ClientURL())
	svc := startService(t, nc, Config{Replicas: 1, Billing: BillingConfig{Key: testBillingKey(t), TreasuryTwins: []uint32{1}}})
	ledgerStress(t, []*nats.Conn{nc}, []*Service{svc})
}

// TestLedgerSumsUnderConcurrencyCluster: the same through three registry
// services on a cluster of three servers, each billing at once.
func TestLedgerSumsUnderConcurrencyCluster(t *testing.T) {
	testutil.SkipShort(t, "cluster test")
	srvs := startCluster(t, 3)
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.ClientURL()
	}
	ncs := make([]*nats.Conn, len(srvs))
	svcs := make([]*Service, len(srvs))
	var eg errgroup.Group
	for i := range srvs {
		ncs[i] = connect(t, urls[i])
		eg.Go(func() error {
			svcs[i] = startService(t, ncs[i], Config{Replicas: 3, Billing: BillingConfig{Key: testBillingKey(t), TreasuryTwins: []uint32{1}}})
			return nil
		})
	}
	_ = eg.Wait()
	ledgerStress(t, ncs, svcs)
}

func testBillingKey(t testing.TB) []byte {
	t.Helper()
	k, err := DeriveBillingKey([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ledgerStress(t *testing.T, ncs []*nats.Conn, svcs []*Service) {
	ctx := context.Background()
	g := &grid{nc: ncs[0]}
	// In a cluster a server may read a record a moment after another
	// wrote it: each new twin is awaited on every service.
	newUser := func() *user {
		u := g.user(t)
		for _, s := range svcs {
			testutil.Eventually(t, 10*time.Second, "every service to see the new twin", func() (bool, error) {
				_, err := s.twinByKey(ctx, u.key.PublicHex())
				return err == nil, nil
			})
		}
		return u
	}
	treasury := newUser()
	if treasury.twin.ID != 1 {
		t.Fatalf("treasury got twin %d, want 1", treasury.twin.ID)
	}
	farmer, nodeUser := newUser(), newUser()
	farm, err := farmer.c.CreateFarm(ctx, "farm1")
	if err != nil {
		t.Fatal(err)
	}
	var node Node
	testutil.Eventually(t, 10*time.Second, "the node to register", func() (bool, error) {
		node, err = nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, FarmToken: farmToken(t, farmer, farm.ID),
			Total: Resources{CRU: 4, MRU: 8 << 30}})
		return err == nil, err
	})
	for _, s := range svcs {
		testutil.Eventually(t, 10*time.Second, "every service to see the node", func() (bool, error) {
			_, err := s.st.indexGet(ctx, fmt.Sprintf("nodetwin.%d", nodeUser.twin.ID))
			return err == nil, nil
		})
	}
	// Tenants, each with clients through every server.
	const tenants = 5
	users := make([]*user, tenants)
	clients := make([][]*Client, tenants)
	contracts := make([]Contract, tenants)
	for i := range users {
		users[i] = newUser()
		for _, nc := range ncs {
			clients[i] = append(clients[i], NewClient(nc, users[i].key))
		}
		c, err := users[i].c.CreateNodeContract(ctx, node.ID, "ab", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		contracts[i] = c
	}
	var treasuries, nodes []*Client
	for _, nc := range ncs {
		treasuries = append(treasuries, NewClient(nc, treasury.key))
		nodes = append(nodes, NewClient(nc, nodeUser.key))
	}
	// Each contract's windows are reported in order, 1 s each, from its
	// creation on.
	var reportMu [tenants]sync.Mutex
	next := make([]int64, tenants)
	for i, c := range contracts {
		next[i] = c.Created.Unix() - 30
	}

	var deposited, ops atomic.Int64
	var eg errgroup.Group
	eg.SetLimit(8)
	const total = 1000
	start := time.Now()
	for n := range total {
		eg.Go(func() error {
			r := rand.New(rand.NewPCG(uint64(n), 1))
			via := n % len(ncs)
			i := r.IntN(tenants)
			var err error
			switch k := n % 20; {
			case k < 8: // deposit
				amount := r.Int64N(100000) + 1
				if _, err = treasuries[via].Deposit(ctx, users[i].twin.ID, amount); err == nil {
					deposited.Add(amount)
				}
			case k < 16: // transfer (may lack funds)
				to := users[(i+1+r.IntN(tenants-1))%tenants].twin.ID
				_, err = clients[i][via].Transfer(ctx, to, r.Int64N(60000)+1)
				if errors.Is(err, ErrInsufficientFunds) {
					err = nil
				}
			case k < 19: // a usage report
				reportMu[i].Lock()
				start := next[i]
				next[i]++
				err = nodes[via].ReportUsage(ctx, []billing.UsageReport{report(node.ID, contracts[i].ID, start, start+1)})
				reportMu[i].Unlock()
			default: // a billing run, on every server at once
				err = svcs[via].BillOnce(ctx)
			}
			ops.Add(1)
			if err != nil {
				return fmt.Errorf("op %d: %w", n, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		t.Fatal(err)
	}
	// The last bills.
	for _, s := range svcs {
		if err := s.BillOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d operations in %s", ops.Load(), time.Since(start))
	t.Logf("last bills after %s", time.Since(start))
	var sum int64
	twins := []uint32{GridAccount, treasury.twin.ID, farmer.twin.ID, nodeUser.twin.ID}
	for _, u := range users {
		twins = append(twins, u.twin.ID)
	}
	billed := 0
	for _, tw := range twins {
		a := checkLedger(t, nodes[0], tw)
		sum += a.Balance
	}
	// Every bill paid once: the farm and the grid hold what was billed
	// less what is still due.
	var charged int64
	for _, c := range contracts {
		bills, err := nodes[0].Bills(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		billed += len(bills)
		for _, b := range bills {
			charged += b.Amount
		}
		rec, _, err := svcs[0].billingRecord(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		charged -= rec.Due
	}
	farmGot := checkLedger(t, nodes[0], farmer.twin.ID).Balance + checkLedger(t, nodes[0], GridAccount).Balance
	if farmGot != charged {
		t.Fatalf("farm and grid got %d, bills paid amount to %d", farmGot, charged)
	}
	if sum != deposited.Load() {
		t.Fatalf("balances sum to %d, deposits to %d", sum, deposited.Load())
	}
	if billed == 0 {
		t.Fatal("no bills made")
	}
	t.Logf("%d bills; farmer holds %d of %d deposited", billed, checkLedger(t, nodes[0], farmer.twin.ID).Balance, sum)
}
