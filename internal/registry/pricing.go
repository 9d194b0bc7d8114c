package registry

import (
	"errors"
	"fmt"
	"math"
	"math/big"

	"github.com/zos-go/zos/internal/billing"
)

// Pricing is the grid's pricing policy, in the original's units
// (threefoldtech/tfchain, pallets/pallet-smart-contract/src/cost.rs, and
// the grid clients' calculators, tfgrid-sdk-ts grid_client
// src/modules/calculator.ts): every price is in the grid's smallest unit
// of currency (an integer amount, like tfchain's unit-USD prices), per
// hour for capacity, public IPs and names, per GB for network traffic.
type Pricing struct {
	// CU is the price of one compute unit per hour; SU of one storage
	// unit per hour (formulas in Cost).
	CU int64 `json:"cu"`
	SU int64 `json:"su"`
	// IPv4 is the price of one public IPv4 address per hour.
	IPv4 int64 `json:"ipv4"`
	// NU is the price of one GB (2^30 bytes) of network traffic.
	NU int64 `json:"nu"`
	// Name is the price of one name contract per hour.
	Name int64 `json:"unique_name"`
	// GridShare is the percent of each payment that goes to the grid's
	// account (twin 0); the rest goes to the farm's twin.
	GridShare int64 `json:"grid_share_percent"`
}

// DefaultPricing is tfchain's genesis pricing policy (su 50000, cu 100000,
// nu 15000, ipu 40000, unique_name 2500, in unit-USD, 1e-7 USD): the same
// numbers here are amounts of the grid's smallest unit.
var DefaultPricing = Pricing{CU: 100000, SU: 50000, IPv4: 40000, NU: 15000, Name: 2500, GridShare: 10}

// MaxAmount bounds every amount, price and balance: 2^53 units, exact in
// JSON readers that decode numbers as doubles.
const MaxAmount = 1 << 53

// ErrOverflow marks an amount beyond MaxAmount.
var ErrOverflow = errors.New("amount out of range")

// Validate checks the policy's prices are within 0..MaxAmount and the
// grid's share a percent.
func (p Pricing) Validate() error {
	for _, v := range [...]struct {
		name string
		n    int64
	}{{"cu", p.CU}, {"su", p.SU}, {"ipv4", p.IPv4}, {"nu", p.NU}, {"unique_name", p.Name}} {
		if v.n < 0 || v.n > MaxAmount {
			return fmt.Errorf("%w: price %s %d out of 0..%d", ErrInvalid, v.name, v.n, int64(MaxAmount))
		}
	}
	if p.GridShare < 0 || p.GridShare > 100 {
		return fmt.Errorf("%w: grid share %d%% out of 0..100", ErrInvalid, p.GridShare)
	}
	return nil
}

// gib is tfchain's GIGABYTE (1024^3 bytes): capacity in bytes is divided
// by it before the unit formulas.
var gib = big.NewRat(1<<30, 1)

// CU is the compute units of cru cores and mru bytes of memory, exactly
// (tfchain cost.rs get_cu): min(max(mru/4, cru/2), max(mru/8, cru),
// max(mru/2, cru/4)), mru in GB.
func CU(cru, mru uint64) *big.Rat {
	m := new(big.Rat).Quo(new(big.Rat).SetInt(new(big.Int).SetUint64(mru)), gib)
	c := new(big.Rat).SetInt(new(big.Int).SetUint64(cru))
	frac := func(x *big.Rat, n, d int64) *big.Rat { return new(big.Rat).Mul(x, big.NewRat(n, d)) }
	maxR := func(a, b *big.Rat) *big.Rat {
		if a.Cmp(b) > 0 {
			return a
		}
		return b
	}
	minR := func(a, b *big.Rat) *big.Rat {
		if a.Cmp(b) < 0 {
			return a
		}
		return b
	}
	cu1 := maxR(frac(m, 1, 4), frac(c, 1, 2))
	cu2 := maxR(frac(m, 1, 8), c)
	cu3 := maxR(frac(m, 1, 2), frac(c, 1, 4))
	return minR(minR(cu1, cu2), cu3)
}

// SU is the storage units of sru bytes of SSD and hru bytes of HDD,
// exactly (tfchain cost.rs get_su): hru/1200 + sru/200, in GB.
func SU(sru, hru uint64) *big.Rat {
	h := new(big.Rat).Quo(new(big.Rat).SetInt(new(big.Int).SetUint64(hru)), new(big.Rat).Mul(gib, big.NewRat(1200, 1)))
	s := new(big.Rat).Quo(new(big.Rat).SetInt(new(big.Int).SetUint64(sru)), new(big.Rat).Mul(gib, big.NewRat(200, 1)))
	return h.Add(h, s)
}

// Usage is what a bill charges for: capacity, public IPs and names held
// for Seconds, and network bytes.
type Usage struct {
	Seconds   int64
	Capacity  Resources
	PublicIPs uint64
	Names     uint64
	NetBytes  uint64
}

// Cost is the price of u under p, rounded down to a whole unit:
// (CU*cu + SU*su + ips*ipv4 + names*name) * seconds/3600 + net/GB * nu,
// computed exactly (rationals) and refused when above MaxAmount.
func (p Pricing) Cost(u Usage) (int64, error) {
	t, err := p.exactCost(u)
	if err != nil {
		return 0, err
	}
	return floorAmount(t)
}

// exactCost is the price of u under p, exactly.
func (p Pricing) exactCost(u Usage) (*big.Rat, error) {
	if u.Seconds < 0 {
		return nil, fmt.Errorf("%w: negative duration %d s", ErrInvalid, u.Seconds)
	}
	r := func(n int64) *big.Rat { return new(big.Rat).SetInt64(n) }
	ru := func(n uint64) *big.Rat { return new(big.Rat).SetInt(new(big.Int).SetUint64(n)) }
	perHour := new(big.Rat).Mul(CU(u.Capacity.CRU, u.Capacity.MRU), r(p.CU))
	perHour.Add(perHour, new(big.Rat).Mul(SU(u.Capacity.SRU, u.Capacity.HRU), r(p.SU)))
	perHour.Add(perHour, new(big.Rat).Mul(ru(u.PublicIPs), r(p.IPv4)))
	perHour.Add(perHour, new(big.Rat).Mul(ru(u.Names), r(p.Name)))
	total := perHour.Mul(perHour, big.NewRat(u.Seconds, 3600))
	total.Add(total, new(big.Rat).Mul(new(big.Rat).Quo(ru(u.NetBytes), gib), r(p.NU)))
	return total, nil
}

// floorAmount rounds a non-negative cost down to a whole unit, refusing
// one above MaxAmount.
func floorAmount(t *big.Rat) (int64, error) {
	q := new(big.Int).Quo(t.Num(), t.Denom()) // both non-negative: floor
	if !q.IsInt64() || q.Int64() > MaxAmount {
		return 0, fmt.Errorf("%w: cost %s above %d", ErrOverflow, q, int64(MaxAmount))
	}
	return q.Int64(), nil
}

// ReportCost prices one usage report; rented says the node is rented by
// the contract's twin, whose rent contract pays for the capacity (only the
// IPs and the traffic are billed here).
func (p Pricing) ReportCost(r billing.UsageReport, rented bool) (int64, error) {
	t, err := p.exactReportCost(r, rented)
	if err != nil {
		return 0, err
	}
	return floorAmount(t)
}

// exactReportCost prices one usage report exactly.
func (p Pricing) exactReportCost(r billing.UsageReport, rented bool) (*big.Rat, error) {
	u := Usage{Seconds: r.End - r.Start, PublicIPs: uint64(r.PublicIPs), NetBytes: r.NetBytes}
	if !rented {
		u.Capacity = Resources{CRU: r.CRU, MRU: r.MRU, SRU: r.SRU, HRU: r.HRU}
	}
	return p.exactCost(u)
}

// addAmount returns a+b, refusing a result outside 0..MaxAmount.
func addAmount(a, b int64) (int64, error) {
	if b > 0 && a > math.MaxInt64-b {
		return 0, fmt.Errorf("%w: %d + %d", ErrOverflow, a, b)
	}
	s := a + b
	if s < 0 || s > MaxAmount {
		return 0, fmt.Errorf("%w: %d + %d = %d, want 0..%d", ErrOverflow, a, b, s, int64(MaxAmount))
	}
	return s, nil
}
