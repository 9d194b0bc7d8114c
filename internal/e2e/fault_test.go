package e2e

import (
	"os"
	"strconv"
	"testing"
)

// The fault tier: tests named TestFault* inject the faults operators meet
// (a killed zgrid or node, a full grid store, a dying or missing disk)
// into real processes and check that nothing acknowledged is lost and that
// zosctl, the node and the grid agree on every deployment afterwards.
// `make test` runs each fault once; `make bench` repeats them
// (ZOS_FAULT_ROUNDS) to shake out the rare interleavings.

// faultRounds is how often a fault test repeats its fault: 1 unless
// ZOS_FAULT_ROUNDS says more.
func faultRounds(t testing.TB) int {
	t.Helper()
	s := os.Getenv("ZOS_FAULT_ROUNDS")
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("ZOS_FAULT_ROUNDS=%q: want a positive number", s)
	}
	return n
}
