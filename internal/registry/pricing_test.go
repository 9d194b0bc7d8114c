package registry

import (
	"errors"
	"math/big"
	"testing"

	"github.com/zos-go/zos/internal/billing"
)

// TestCUandSU checks the unit formulas against tfchain's (cost.rs get_cu,
// get_su) on hand-computed values.
func TestCUandSU(t *testing.T) {
	const g = 1 << 30
	tests := []struct {
		name     string
		cru, mru uint64
		sru, hru uint64
		cu, su   *big.Rat
	}{
		{"nothing", 0, 0, 0, 0, big.NewRat(0, 1), big.NewRat(0, 1)},
		// min(max(1/4,1/2), max(1/8,1), max(1/2,1/4)) = 1/2
		{"1 core 1 GB", 1, g, 0, 0, big.NewRat(1, 2), big.NewRat(0, 1)},
		// min(max(1,1), max(1/2,2), max(2,1/2)) = 1
		{"2 cores 4 GB", 2, 4 * g, 0, 0, big.NewRat(1, 1), big.NewRat(0, 1)},
		// min(max(4,1/2), max(2,1), max(8,1/4)) = 2: memory bound
		{"1 core 16 GB", 1, 16 * g, 0, 0, big.NewRat(2, 1), big.NewRat(0, 1)},
		// min(max(1/4,4), max(1/8,8), max(1/2,2)) = 2: cores bound
		{"8 cores 1 GB", 8, g, 0, 0, big.NewRat(2, 1), big.NewRat(0, 1)},
		// 200 GB SSD = 1 SU; 1200 GB HDD = 1 SU
		{"200 GB ssd", 0, 0, 200 * g, 0, big.NewRat(0, 1), big.NewRat(1, 1)},
		{"1200 GB hdd", 0, 0, 0, 1200 * g, big.NewRat(0, 1), big.NewRat(1, 1)},
		{"100 GB ssd 600 GB hdd", 0, 0, 100 * g, 600 * g, big.NewRat(0, 1), big.NewRat(1, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CU(tt.cru, tt.mru); got.Cmp(tt.cu) != 0 {
				t.Errorf("CU(%d, %d): got %s, want %s", tt.cru, tt.mru, got, tt.cu)
			}
			if got := SU(tt.sru, tt.hru); got.Cmp(tt.su) != 0 {
				t.Errorf("SU(%d, %d): got %s, want %s", tt.sru, tt.hru, got, tt.su)
			}
		})
	}
}

// TestBillFormulas checks what a bill charges under DefaultPricing, in
// whole units rounded down.
func TestBillFormulas(t *testing.T) {
	const g = 1 << 30
	p := DefaultPricing
	tests := []struct {
		name   string
		report billing.UsageReport
		rented bool
		want   int64
	}{
		// 1/2 CU * 100000 per hour
		{"half a CU for an hour", billing.UsageReport{Start: 1, End: 3601, CRU: 1, MRU: g}, false, 50000},
		// 1 CU for 36 s: 100000/100
		{"a CU for 36 s", billing.UsageReport{Start: 1, End: 37, CRU: 2, MRU: 4 * g}, false, 1000},
		// 1 SU (200 GB ssd) for an hour
		{"an SU for an hour", billing.UsageReport{Start: 1, End: 3601, SRU: 200 * g}, false, 50000},
		// 2 IPv4 for half an hour
		{"two ips for half an hour", billing.UsageReport{Start: 1, End: 1801, PublicIPs: 2}, false, 40000},
		// 3 GB of traffic, whatever the time
		{"3 GB of traffic", billing.UsageReport{Start: 1, End: 2, NetBytes: 3 * g}, false, 45000},
		// everything: (1 CU + 1 SU + 1 IP) for an hour + 1 GB
		{"everything", billing.UsageReport{Start: 1, End: 3601, CRU: 2, MRU: 4 * g, SRU: 200 * g, PublicIPs: 1, NetBytes: g}, false,
			100000 + 50000 + 40000 + 15000},
		// a rented node's contract pays only IPs and traffic
		{"rented node", billing.UsageReport{Start: 1, End: 3601, CRU: 2, MRU: 4 * g, SRU: 200 * g, PublicIPs: 1, NetBytes: g}, true,
			40000 + 15000},
		// rounded down: 1/2 CU for 1 s is 13.88
		{"rounded down", billing.UsageReport{Start: 1, End: 2, CRU: 1, MRU: g}, false, 13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.ReportCost(tt.report, tt.rented)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
	// Names and rent by time.
	if got, _ := p.Cost(Usage{Seconds: 7200, Names: 1}); got != 5000 {
		t.Errorf("a name for two hours: got %d, want 5000", got)
	}
	// A whole node (4 cores, 16 GB, 1 TB ssd) for an hour: CU min(max(4,2),
	// max(2,4), max(8,1)) = 4, SU 1024/200 = 5.12.
	if got, _ := p.Cost(Usage{Seconds: 3600, Capacity: Resources{CRU: 4, MRU: 16 * g, SRU: 1024 * g}}); got != 400000+256000 {
		t.Errorf("a rented node for an hour: got %d, want %d", got, 400000+256000)
	}
}

// TestCostOverflowRefused: a cost beyond MaxAmount is an error, never a
// wrapped number.
func TestCostOverflowRefused(t *testing.T) {
	p := Pricing{CU: MaxAmount}
	_, err := p.Cost(Usage{Seconds: 1 << 40, Capacity: Resources{CRU: 1 << 16, MRU: 1 << 53}})
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("got %v, want ErrOverflow", err)
	}
	if _, err := p.Cost(Usage{Seconds: -1}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative duration: got %v, want ErrInvalid", err)
	}
	if _, err := addAmount(MaxAmount, 1); !errors.Is(err, ErrOverflow) {
		t.Fatalf("MaxAmount+1: got %v, want ErrOverflow", err)
	}
	for _, bad := range []Pricing{{CU: -1}, {NU: MaxAmount + 1}, {GridShare: 101}} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("policy %+v: got %v, want ErrInvalid", bad, err)
		}
	}
}
