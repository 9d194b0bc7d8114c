package gridd_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/explorer"
	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// TestGridBills: zgrid publishes the billing key derived from its system
// key, takes deposits from its treasury twin only, and its billing loop
// bills a name contract by the hour from the balance.
func TestGridBills(t *testing.T) {
	cfg := gridtest.Loopback(t)
	cfg.TreasuryTwins = []uint32{1}
	cfg.BillingPeriod = 200 * time.Millisecond
	cfg.HTTPPort = natsd.RandomPort
	addrs := gridtest.Start(t, cfg)
	ctx := context.Background()
	client := func() (*registry.Client, registry.Twin) {
		k, err := identity.Generate()
		if err != nil {
			t.Fatal(err)
		}
		connect := func() *registry.Client {
			nc, err := rmb.Connect(addrs.NATS, k)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(nc.Close)
			return registry.NewClient(nc, k)
		}
		tw, err := connect().CreateTwin(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		// Connected again, as a registered twin.
		return connect(), tw
	}
	treasury, tt := client()
	if tt.ID != 1 {
		t.Fatalf("treasury got twin %d, want 1", tt.ID)
	}
	user, ut := client()

	sys, _, err := identity.LoadOrCreate(filepath.Join(cfg.DataDir, "system.key"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := registry.DeriveBillingKey(sys.Seed())
	if err != nil {
		t.Fatal(err)
	}
	info, err := user.GridInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := info.PublicBillingKey(); err != nil || !got.Equal(want.Public().(ed25519.PublicKey)) {
		t.Fatalf("grid.info billing key: got %s (%v), want the key derived from the system key", info.BillingKey, err)
	}

	if _, err := user.Deposit(ctx, ut.ID, 1000); err == nil {
		t.Fatal("deposit by a twin that is not the treasury: got no error")
	}
	if _, err := treasury.Deposit(ctx, ut.ID, 1_000_000); err != nil {
		t.Fatal(err)
	}
	c, err := user.CreateNameContract(ctx, "billed")
	if err != nil {
		t.Fatal(err)
	}
	// 2500 an hour: a unit each 1.44 s.
	testutil.Eventually(t, 30*time.Second, "the name contract to be billed", func() (bool, error) {
		bills, err := user.Bills(ctx, c.ID)
		if err != nil {
			return false, err
		}
		a, err := user.Balance(ctx, ut.ID)
		return len(bills) > 0 && a.Balance < 1_000_000, err
	})
	grid, err := user.Balance(ctx, registry.GridAccount)
	if err != nil {
		t.Fatal(err)
	}
	if grid.Balance <= 0 {
		t.Fatalf("grid account: got %d, want the name's price", grid.Balance)
	}

	// The explorer shows the pricing and, once its snapshot has the
	// contract, the bills.
	var pricing registry.GridInfo
	if code := getJSON(t, "http://"+addrs.Explorer+"/pricing", &pricing); code != http.StatusOK ||
		pricing.Pricing != registry.DefaultPricing || pricing.BillingKey != info.BillingKey {
		t.Fatalf("/pricing: got %d %+v", code, pricing)
	}
	var bills []explorer.ContractBill
	testutil.Eventually(t, 30*time.Second, "the explorer to show the bills", func() (bool, error) {
		code := getJSON(t, fmt.Sprintf("http://%s/contracts/%d/bills", addrs.Explorer, c.ID), &bills)
		return code == http.StatusOK && len(bills) > 0, nil
	})
	if bills[0].ContractID != c.ID || bills[0].AmountBilled <= 0 || bills[0].Seq != 1 {
		t.Fatalf("first bill: got %+v", bills[0])
	}
}

// getJSON GETs url into v and returns the status code.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("decoding %s: %v", url, err)
		}
	}
	return resp.StatusCode
}
