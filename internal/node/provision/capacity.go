package provision

import (
	"fmt"
	"math"
	"math/bits"

	"github.com/zos-go/zos/internal/gridtypes"
)

// Capacity arithmetic of the engine. Workload sizes come from tenants and
// may be anything up to 2^64-1, so sums saturate instead of wrapping (a
// wrapped sum would make a full node look empty) and fit checks add with a
// carry instead of comparing wrapped values.

// satAdd is a+b, or the largest uint64 when that overflows.
func satAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

// satSub is a-b, or 0 when b is larger.
func satSub(a, b uint64) uint64 {
	if b >= a {
		return 0
	}
	return a - b
}

// sum is a+b per resource, saturating.
func sum(a, b gridtypes.Capacity) gridtypes.Capacity {
	return gridtypes.Capacity{
		CRU: satAdd(a.CRU, b.CRU), MRU: satAdd(a.MRU, b.MRU), SRU: satAdd(a.SRU, b.SRU),
		HRU: satAdd(a.HRU, b.HRU), IPV4U: satAdd(a.IPV4U, b.IPV4U),
	}
}

// less is a-b per resource, 0 where b is larger.
func less(a, b gridtypes.Capacity) gridtypes.Capacity {
	return gridtypes.Capacity{
		CRU: satSub(a.CRU, b.CRU), MRU: satSub(a.MRU, b.MRU), SRU: satSub(a.SRU, b.SRU),
		HRU: satSub(a.HRU, b.HRU), IPV4U: satSub(a.IPV4U, b.IPV4U),
	}
}

// most is the larger of a and b per resource.
func most(a, b gridtypes.Capacity) gridtypes.Capacity {
	return gridtypes.Capacity{
		CRU: max(a.CRU, b.CRU), MRU: max(a.MRU, b.MRU), SRU: max(a.SRU, b.SRU),
		HRU: max(a.HRU, b.HRU), IPV4U: max(a.IPV4U, b.IPV4U),
	}
}

// fits reports whether need more fits next to used and sys in total,
// computed without wrapping.
func fits(need, used, sys, total uint64) bool {
	s, c1 := bits.Add64(used, sys, 0)
	s, c2 := bits.Add64(s, need, 0)
	return c1 == 0 && c2 == 0 && s <= total
}

// fit checks that need more fits next to used (the workloads of the node)
// and sys (what the system keeps) in total, for the resources the engine
// guards: memory, SSD and HDD. Cores are shared (over-provisioned, as the
// original) and public IPs are checked against the contract. The error
// wraps ErrNoCapacity and names the resource.
func fit(need, used, sys, total gridtypes.Capacity) error {
	for _, r := range []struct {
		name                   string
		need, used, sys, total uint64
	}{
		{"memory", need.MRU, used.MRU, sys.MRU, total.MRU},
		{"SSD", need.SRU, used.SRU, sys.SRU, total.SRU},
		{"HDD", need.HRU, used.HRU, sys.HRU, total.HRU},
	} {
		if r.need == 0 || fits(r.need, r.used, r.sys, r.total) {
			continue
		}
		free := satSub(satSub(r.total, r.used), r.sys)
		return fmt.Errorf("%w: %s needs %d bytes, %d free (total %d, used %d, reserved by the system %d)",
			ErrNoCapacity, r.name, r.need, free, r.total, r.used, r.sys)
	}
	return nil
}
