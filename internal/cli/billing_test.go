package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestBillingCommands: zosctl shows the pricing, the treasury deposits,
// twins transfer, balances list their ledger, and a name contract's bills
// show once the grid's billing loop ran.
func TestBillingCommands(t *testing.T) {
	cfg := gridtest.Loopback(t)
	cfg.TreasuryTwins = []uint32{1}
	cfg.BillingPeriod = 200 * time.Millisecond
	grid := gridtest.Start(t, cfg).NATS
	g := "--grid=" + grid
	treasury, tt := newHome(t, grid)
	if tt != 1 {
		t.Fatalf("treasury got twin %d, want 1", tt)
	}
	alice, at := newHome(t, grid)
	bob, bt := newHome(t, grid)

	var info registry.GridInfo
	if err := json.Unmarshal([]byte(mustRun(t, alice, "pricing", g, "--json")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Pricing != registry.DefaultPricing || len(info.BillingKey) != 64 {
		t.Fatalf("pricing: got %+v, want the default policy and a billing key", info)
	}
	if out := mustRun(t, alice, "pricing", g); !strings.Contains(out, "compute unit (CU)") || !strings.Contains(out, info.BillingKey) {
		t.Fatalf("pricing table: %q", out)
	}

	mustRun(t, treasury, "deposit", itoa(uint64(at)), "1000000", g)
	// Only the treasury deposits; amounts are whole and positive.
	if _, errs, code := run(t, alice, "deposit", itoa(uint64(at)), "5", g); code != 1 || !strings.Contains(errs, "not a treasury twin") {
		t.Fatalf("deposit by alice: exit %d, %q", code, errs)
	}
	for _, bad := range []string{"0", "1.5", "9007199254740993", "x"} {
		if _, _, code := run(t, treasury, "deposit", itoa(uint64(at)), bad, g); code != 2 {
			t.Fatalf("deposit of %q: exit %d, want 2", bad, code)
		}
	}
	mustRun(t, alice, "transfer", itoa(uint64(bt)), "300000", g)
	if _, errs, code := run(t, bob, "transfer", itoa(uint64(at)), "300001", g); code != 1 || !strings.Contains(errs, "insufficient funds") {
		t.Fatalf("transfer above the balance: exit %d, %q", code, errs)
	}
	var bal struct {
		registry.Account
		Ledger []registry.LedgerEntry `json:"ledger"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, alice, "balance", "--ledger", g, "--json")), &bal); err != nil {
		t.Fatal(err)
	}
	if bal.Balance != 700000 || len(bal.Ledger) != 2 || bal.Ledger[1].Kind != registry.EntryTransferOut {
		t.Fatalf("alice's balance: got %+v", bal)
	}
	if out := mustRun(t, alice, "balance", itoa(uint64(bt)), g); !strings.Contains(out, "balance: 300000") {
		t.Fatalf("bob's balance: %q", out)
	}

	// A farm's own prices, within the grid's bounds.
	var farm registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, bob, "farm", "create", "bobfarm", g, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	fid := itoa(uint64(farm.ID))
	if out := mustRun(t, bob, "farm", "pricing", fid, "--cu", "60000", "--su", "50000", "--ipv4", "40000", "--nu", "15000", g); !strings.Contains(out, "cu 60000") {
		t.Fatalf("farm pricing: %q", out)
	}
	if _, errs, code := run(t, bob, "farm", "pricing", fid, "--cu", "1", "--su", "50000", "--ipv4", "40000", "--nu", "15000", g); code != 1 || !strings.Contains(errs, "outside the grid's bounds") {
		t.Fatalf("farm pricing below the bounds: exit %d, %q", code, errs)
	}
	if _, _, code := run(t, bob, "farm", "pricing", fid, "--cu", "60000", g); code != 2 {
		t.Fatalf("farm pricing with one price: exit %d, want 2", code)
	}
	if out := mustRun(t, bob, "farm", "pricing", fid, "--clear", g); !strings.Contains(out, "grid's prices") {
		t.Fatalf("farm pricing --clear: %q", out)
	}

	var c registry.Contract
	if err := json.Unmarshal([]byte(mustRun(t, alice, "name", "reserve", "billedname", g, "--json")), &c); err != nil {
		t.Fatal(err)
	}
	var bills []registry.Bill
	testutil.Eventually(t, 30*time.Second, "a bill of the name contract", func() (bool, error) {
		out, errs, code := run(t, alice, "contract", "bills", itoa(c.ID), g, "--json")
		if code != 0 {
			return false, nil
		}
		if err := json.Unmarshal([]byte(out), &bills); err != nil {
			t.Fatalf("bills %q: %v (%s)", out, err, errs)
		}
		return len(bills) > 0, nil
	})
	if bills[0].ContractID != c.ID || bills[0].Amount <= 0 {
		t.Fatalf("bill: got %+v", bills[0])
	}
	if out := mustRun(t, alice, "contract", "bills", itoa(c.ID), g); !strings.Contains(out, "AMOUNT") {
		t.Fatalf("bills table: %q", out)
	}
}
