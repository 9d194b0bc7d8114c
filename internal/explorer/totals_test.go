package explorer

import (
	"math"
	"testing"

	"github.com/zos-go/zos/internal/registry"
)

// TestTotalsSaturate: the grid's totals stop at the largest uint64 rather
// than wrapping around when node capacities near 2^64 add up.
func TestTotalsSaturate(t *testing.T) {
	half := uint64(1) << 63
	nodes := []registry.Node{
		{ID: 1, Total: registry.Resources{CRU: 4, MRU: half, HRU: math.MaxUint64}},
		{ID: 2, Total: registry.Resources{CRU: 4, MRU: half, HRU: 1}},
		{ID: 3, Total: registry.Resources{CRU: 4, MRU: 1}},
	}
	s := buildSnapshot(testNow, nodes, nil, nil, nil)
	got := s.nodeTotals(nil, testNow).Total
	want := Capacity{CRU: 12, MRU: math.MaxUint64, HRU: math.MaxUint64}
	if got != want {
		t.Fatalf("totals: got %+v, want %+v", got, want)
	}
}
