package qsfs

import (
	"fmt"
	"slices"
)

// placeBackend is a candidate backend for shards: its index in the store's
// backend list and its group.
type placeBackend struct {
	idx, group int
}

// place spreads n shards over backends so that losing any rn backends or
// any rg whole groups loses at most n-minimal shards. It returns, per
// shard, the position in backends. offset rotates the choice among equal
// candidates so that chunks spread over every backend. Two orders are
// tried: groups first (even over groups, then backends), and backends
// first; the first that survives the stated losses wins.
func place(backends []placeBackend, n, minimal, rg, rn, offset int) ([]int, error) {
	if len(backends) == 0 {
		return nil, fmt.Errorf("no backend to place %d shards on", n)
	}
	var firstErr error
	for _, groupsFirst := range []bool{true, false} {
		p := placeFill(backends, unplaced(n), offset, groupsFirst)
		err := survives(backends, p, minimal, rg, rn)
		if err == nil {
			return p, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// unplaced is a placement of n shards none of which has a backend yet.
func unplaced(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = -1
	}
	return p
}

// placeFill assigns every shard of fixed whose entry is -1 to a backend
// (a position in backends), counting the shards already placed; it
// returns the completed placement.
func placeFill(backends []placeBackend, fixed []int, offset int, groupsFirst bool) []int {
	load := make([]int, len(backends))
	gload := map[int]int{}
	out := slices.Clone(fixed)
	for _, b := range out {
		if b >= 0 {
			load[b]++
			gload[backends[b].group]++
		}
	}
	for si := range out {
		if out[si] >= 0 {
			continue
		}
		best := -1
		for k := range backends {
			i := (k + offset) % len(backends)
			if best < 0 {
				best = i
				continue
			}
			a := [2]int{load[i], gload[backends[i].group]}
			b := [2]int{load[best], gload[backends[best].group]}
			if groupsFirst {
				a[0], a[1] = a[1], a[0]
				b[0], b[1] = b[1], b[0]
			}
			if a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]) {
				best = i
			}
		}
		load[best]++
		gload[backends[best].group]++
		out[si] = best
	}
	return out
}

// survives checks that losing the rn most loaded backends, or the rg most
// loaded groups, leaves at least minimal of the placed shards.
func survives(backends []placeBackend, p []int, minimal, rg, rn int) error {
	tol := len(p) - minimal
	if tol < 0 {
		return fmt.Errorf("%d shards placed, fewer than the %d minimal shards", len(p), minimal)
	}
	load := map[int]int{}
	gload := map[int]int{}
	for _, i := range p {
		load[backends[i].idx]++
		gload[backends[i].group]++
	}
	if lost := worst(load, rn); lost > tol {
		return fmt.Errorf("losing %d backends would lose %d shards of a chunk, more than the %d it can lose (%d shards over %d backends)",
			rn, lost, tol, len(p), len(load))
	}
	if lost := worst(gload, rg); lost > tol {
		return fmt.Errorf("losing %d groups would lose %d shards of a chunk, more than the %d it can lose (%d shards over %d groups)",
			rg, lost, tol, len(p), len(gload))
	}
	return nil
}

// worst sums the k largest counts.
func worst(m map[int]int, k int) int {
	v := make([]int, 0, len(m))
	for _, c := range m {
		v = append(v, c)
	}
	slices.Sort(v)
	slices.Reverse(v)
	sum := 0
	for i := 0; i < k && i < len(v); i++ {
		sum += v[i]
	}
	return sum
}
