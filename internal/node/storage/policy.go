package storage

import (
	"fmt"
	"sort"
	"strings"
)

// Policy says which pools an allocation may use.
type Policy int

// Allocation policies.
const (
	SSDOnly  Policy = iota // volumes, vdisks
	HDDOnly                // zdb devices
	SSDFirst               // the cache: SSD if one fits, else HDD
)

func (p Policy) String() string {
	switch p {
	case SSDOnly:
		return "ssd"
	case HDDOnly:
		return "hdd"
	default:
		return "ssd or hdd"
	}
}

// choose picks the healthy pool with the most free space that fits size
// under the policy; accept, when set, excludes further pools. Allocations
// never exceed a pool's size: there is no overprovisioning. The error names
// the best candidate and wraps ErrNoSpace.
func choose(pools []*pool, policy Policy, size uint64, accept func(*pool) bool) (*pool, error) {
	var ssd, hdd []*pool
	var failed []string // failed pools of the policy's types, for the error
	for _, p := range pools {
		if p.broken != "" && (policy != SSDOnly || p.typ == SSD) && (policy != HDDOnly || p.typ == HDD) {
			failed = append(failed, fmt.Sprintf("pool %s failed: %s", p.name, p.broken))
		}
		if p.broken != "" || (accept != nil && !accept(p)) {
			continue
		}
		switch p.typ {
		case SSD:
			ssd = append(ssd, p)
		case HDD:
			hdd = append(hdd, p)
		}
	}
	var tiers [][]*pool
	switch policy {
	case SSDOnly:
		tiers = [][]*pool{ssd}
	case HDDOnly:
		tiers = [][]*pool{hdd}
	case SSDFirst:
		tiers = [][]*pool{ssd, hdd}
	}
	var best *pool // most free among all candidates, for the error
	for _, tier := range tiers {
		sort.SliceStable(tier, func(i, j int) bool {
			if tier[i].free() != tier[j].free() {
				return tier[i].free() > tier[j].free()
			}
			return tier[i].name < tier[j].name
		})
		if len(tier) > 0 && tier[0].free() >= size {
			return tier[0], nil
		}
		if len(tier) > 0 && (best == nil || tier[0].free() > best.free()) {
			best = tier[0]
		}
	}
	note := ""
	if len(failed) > 0 {
		note = " (" + strings.Join(failed, "; ") + ")"
	}
	if best == nil {
		return nil, fmt.Errorf("no usable %s pool%s: %w", policy, note, ErrNoSpace)
	}
	largest := uint64(0)
	for _, tier := range tiers {
		for _, p := range tier {
			largest = max(largest, p.size)
		}
	}
	if size > largest {
		return nil, fmt.Errorf("%s is larger than the largest %s pool (%s)%s: %w", sizeString(size), policy, sizeString(largest), note, ErrNoSpace)
	}
	return nil, fmt.Errorf("%s wanted, most free %s pool %s has %s of %s left%s: %w",
		sizeString(size), policy, best.name, sizeString(best.free()), sizeString(best.size), note, ErrNoSpace)
}
