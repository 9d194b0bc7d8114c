package explorer

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// Node statuses, as gridproxy reports them.
const (
	StatusUp      = "up"
	StatusDown    = "down"
	StatusStandby = "standby"
)

// Windows of the status rules: nodes report uptime every 40 minutes.
const (
	UpWindow      = 2 * 40 * time.Minute
	StandbyWindow = 24 * time.Hour
)

// Reservations assumed when a node did not report its own (§10.2).
const (
	gib             = uint64(1) << 30
	minReservedMRU  = 2 * gib
	defaultReserved = 20 * gib // SRU
)

// Status is the node's status at now: up if it reported uptime within
// UpWindow and its power is not (going) down; standby if its power state or
// target is down and it reported within StandbyWindow; down otherwise.
func Status(n *registry.Node, now time.Time) string {
	age := now.Sub(n.Updated)
	powerDown := n.Power == registry.PowerDown || n.PowerTarget == registry.PowerDown
	switch {
	case !powerDown && age <= UpWindow:
		return StatusUp
	case powerDown && age <= StandbyWindow:
		return StatusStandby
	default:
		return StatusDown
	}
}

// Reserved is what the system keeps on the node: as reported, except memory
// (max(10% of total, 2 GiB)) and SSD (20 GiB) when the node reported none.
func Reserved(n *registry.Node) registry.Resources {
	r := n.Reserved
	if r.MRU == 0 {
		r.MRU = max(n.Total.MRU/10, minReservedMRU)
	}
	if r.SRU == 0 {
		r.SRU = defaultReserved
	}
	return r
}

// Free is total - used - reserved for each resource, never below zero.
func Free(n *registry.Node) registry.Resources {
	r := Reserved(n)
	return registry.Resources{
		CRU: sub(n.Total.CRU, n.Used.CRU, r.CRU),
		MRU: sub(n.Total.MRU, n.Used.MRU, r.MRU),
		SRU: sub(n.Total.SRU, n.Used.SRU, r.SRU),
		HRU: sub(n.Total.HRU, n.Used.HRU, r.HRU),
	}
}

// sub is a - b - c, saturating at zero.
func sub(a, b, c uint64) uint64 {
	if b >= a {
		return 0
	}
	a -= b
	if c >= a {
		return 0
	}
	return a - c
}

// addResources is a+b, saturating rather than wrapping around 2^64.
func addResources(a, b registry.Resources) registry.Resources { return a.Plus(b) }

// nodeEntry is a node with its free capacity and farm.
type nodeEntry struct {
	node *registry.Node // in the slice the Source returned
	free registry.Resources
	farm *farmEntry // nil when the farm is unknown
}

// nodeMeta is what the /nodes filters read, kept apart from the full
// records so that a scan over every node stays in cache.
type nodeMeta struct {
	free      registry.Resources
	updated   int64 // unix nanoseconds of the last uptime report, clamped
	id        uint32
	farmID    uint32
	twinID    uint32
	freeIPs   uint32 // free public IPs of the farm
	country   uint32 // index in snapshot.countryIDs; 0 = none
	powerDown bool
	domain    bool
}

// unixNano is t in unix nanoseconds, clamped to years 1900-2150 so that
// the difference of two such values (at most 250 years, under the 292 an
// int64 holds) never overflows.
func unixNano(t time.Time) int64 {
	lo := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	hi := time.Date(2150, 1, 1, 0, 0, 0, 0, time.UTC)
	switch {
	case t.Before(lo):
		t = lo
	case t.After(hi):
		t = hi
	}
	return t.UnixNano()
}

// status is Status on the compact record; now is from unixNano.
func (m *nodeMeta) status(now int64) string {
	age := time.Duration(now - m.updated)
	switch {
	case !m.powerDown && age <= UpWindow:
		return StatusUp
	case m.powerDown && age <= StandbyWindow:
		return StatusStandby
	default:
		return StatusDown
	}
}

// farmEntry is a farm with its public IP counts and nodes.
type farmEntry struct {
	farm    registry.Farm
	freeIPs int
	nodes   []int32 // indexes in snapshot.nodes
}

// snapshot is an immutable, indexed copy of the registry.
type snapshot struct {
	at         time.Time
	nodes      []nodeEntry // by ID
	meta       []nodeMeta  // same order as nodes
	nodeJSON   []atomic.Pointer[[]byte]
	nodeByID   map[uint32]int32
	countryIDs map[string]uint32 // lower case country -> nodeMeta.country
	farms      []*farmEntry      // by ID
	farmByID   map[uint32]*farmEntry
	twins      []registry.Twin // by ID
	twinByID   map[uint32]int32
	contracts  []registry.Contract // by ID

	totals  Stats // the parts of /stats that do not depend on the clock
	byOrder [numSortKeys]lazyOrder
}

// lazyOrder is the node order for one sort key, computed on first use.
type lazyOrder struct {
	once  sync.Once
	order []int32
}

// buildSnapshot indexes the records; it keeps and reorders the slices.
func buildSnapshot(at time.Time, nodes []registry.Node, farms []registry.Farm, twins []registry.Twin, contracts []registry.Contract) *snapshot {
	s := &snapshot{
		at:         at,
		nodes:      make([]nodeEntry, 0, len(nodes)),
		meta:       make([]nodeMeta, 0, len(nodes)),
		nodeJSON:   make([]atomic.Pointer[[]byte], len(nodes)),
		countryIDs: map[string]uint32{},
		nodeByID:   make(map[uint32]int32, len(nodes)),
		farms:      make([]*farmEntry, 0, len(farms)),
		farmByID:   make(map[uint32]*farmEntry, len(farms)),
		twins:      twins,
		twinByID:   make(map[uint32]int32, len(twins)),
		contracts:  contracts,
	}
	for _, f := range farms {
		fe := &farmEntry{farm: f}
		for _, ip := range f.PublicIPs {
			if ip.ContractID == 0 {
				fe.freeIPs++
			}
		}
		s.farms = append(s.farms, fe)
		s.farmByID[f.ID] = fe
		s.totals.PublicIPs += len(f.PublicIPs)
		s.totals.FreePublicIPs += fe.freeIPs
	}
	slices.SortFunc(s.farms, func(a, b *farmEntry) int { return cmp.Compare(a.farm.ID, b.farm.ID) })

	slices.SortFunc(nodes, func(a, b registry.Node) int { return cmp.Compare(a.ID, b.ID) })
	for k := range nodes {
		n := &nodes[k]
		e := nodeEntry{node: n, free: Free(n), farm: s.farmByID[n.FarmID]}
		m := nodeMeta{
			free:      e.free,
			updated:   unixNano(n.Updated),
			id:        n.ID,
			farmID:    n.FarmID,
			twinID:    n.TwinID,
			freeIPs:   uint32(e.freeIPs()),
			powerDown: n.Power == registry.PowerDown || n.PowerTarget == registry.PowerDown,
			domain:    n.PublicConfig != nil && n.PublicConfig.Domain != "",
		}
		if c := strings.ToLower(n.Location.Country); c != "" {
			id, ok := s.countryIDs[c]
			if !ok {
				id = uint32(len(s.countryIDs) + 1)
				s.countryIDs[c] = id
			}
			m.country = id
		}
		i := int32(len(s.nodes))
		s.nodes = append(s.nodes, e)
		s.meta = append(s.meta, m)
		s.nodeByID[n.ID] = i
		if e.farm != nil {
			e.farm.nodes = append(e.farm.nodes, i)
		}
		s.totals.Total = addResources(s.totals.Total, n.Total)
		s.totals.Used = addResources(s.totals.Used, n.Used)
		s.totals.Free = addResources(s.totals.Free, e.free)
	}
	s.totals.Nodes = len(s.nodes)
	s.totals.Countries = len(s.countryIDs)

	slices.SortFunc(s.twins, func(a, b registry.Twin) int { return cmp.Compare(a.ID, b.ID) })
	for i, t := range s.twins {
		s.twinByID[t.ID] = int32(i)
	}
	slices.SortFunc(s.contracts, func(a, b registry.Contract) int { return cmp.Compare(a.ID, b.ID) })
	s.totals.ContractsByState = map[string]int{}
	for _, c := range s.contracts {
		s.totals.ContractsByState[c.State]++
	}
	s.totals.Farms = len(s.farms)
	s.totals.Twins = len(s.twins)
	s.totals.Contracts = len(s.contracts)
	return s
}

// node, farm, twin and contract find an object by id: the node's and
// twin's index, the farm's entry, the contract's index in s.contracts.
func (s *snapshot) node(id uint64) (int32, bool) {
	i, ok := s.nodeByID[uint32(id)]
	return i, ok
}

func (s *snapshot) farm(id uint64) (*farmEntry, bool) {
	fe, ok := s.farmByID[uint32(id)]
	return fe, ok
}

func (s *snapshot) twin(id uint64) (int32, bool) {
	i, ok := s.twinByID[uint32(id)]
	return i, ok
}

func (s *snapshot) contract(id uint64) (int, bool) {
	return slices.BinarySearchFunc(s.contracts, id, func(c registry.Contract, id uint64) int { return cmp.Compare(c.ID, id) })
}

// order returns the node indexes sorted ascending by key, ties by node ID.
func (s *snapshot) order(key sortKey) []int32 {
	lo := &s.byOrder[key]
	lo.once.Do(func() {
		lo.order = make([]int32, len(s.nodes))
		for i := range lo.order {
			lo.order[i] = int32(i)
		}
		if key == sortNodeID {
			return // nodes are stored by ID
		}
		slices.SortStableFunc(lo.order, func(a, b int32) int {
			return cmp.Compare(key.value(&s.nodes[a]), key.value(&s.nodes[b]))
		})
	})
	return lo.order
}

// sortKey names a node order.
type sortKey int

const (
	sortNodeID sortKey = iota
	sortFarmID
	sortTwinID
	sortFreeCRU
	sortFreeMRU
	sortFreeSRU
	sortFreeHRU
	sortTotalCRU
	sortTotalMRU
	sortTotalSRU
	sortTotalHRU
	sortFreeIPs
	sortUpdated
	sortUptime
	numSortKeys
)

// sortKeys holds, for each key, its value of the sort_by query parameter
// and what it sorts a node by.
var sortKeys = [numSortKeys]struct {
	name  string
	value func(e *nodeEntry) int64
}{
	sortNodeID:   {"node_id", func(e *nodeEntry) int64 { return int64(e.node.ID) }},
	sortFarmID:   {"farm_id", func(e *nodeEntry) int64 { return int64(e.node.FarmID) }},
	sortTwinID:   {"twin_id", func(e *nodeEntry) int64 { return int64(e.node.TwinID) }},
	sortFreeCRU:  {"free_cru", func(e *nodeEntry) int64 { return clamp(e.free.CRU) }},
	sortFreeMRU:  {"free_mru", func(e *nodeEntry) int64 { return clamp(e.free.MRU) }},
	sortFreeSRU:  {"free_sru", func(e *nodeEntry) int64 { return clamp(e.free.SRU) }},
	sortFreeHRU:  {"free_hru", func(e *nodeEntry) int64 { return clamp(e.free.HRU) }},
	sortTotalCRU: {"total_cru", func(e *nodeEntry) int64 { return clamp(e.node.Total.CRU) }},
	sortTotalMRU: {"total_mru", func(e *nodeEntry) int64 { return clamp(e.node.Total.MRU) }},
	sortTotalSRU: {"total_sru", func(e *nodeEntry) int64 { return clamp(e.node.Total.SRU) }},
	sortTotalHRU: {"total_hru", func(e *nodeEntry) int64 { return clamp(e.node.Total.HRU) }},
	sortFreeIPs:  {"free_ips", func(e *nodeEntry) int64 { return int64(e.freeIPs()) }},
	sortUpdated:  {"updated", func(e *nodeEntry) int64 { return unixNano(e.node.Updated) }},
	sortUptime:   {"uptime", func(e *nodeEntry) int64 { return clamp(e.node.Uptime) }},
}

// name is the key's value of the sort_by query parameter.
func (k sortKey) name() string { return sortKeys[k].name }

// value is what the key sorts a node by.
func (k sortKey) value(e *nodeEntry) int64 { return sortKeys[k].value(e) }

func clamp(v uint64) int64 { return int64(min(v, 1<<63-1)) }

func (e *nodeEntry) freeIPs() int {
	if e.farm == nil {
		return 0
	}
	return e.farm.freeIPs
}

func sortKeyNames() []string {
	names := make([]string, 0, numSortKeys)
	for k := range numSortKeys {
		names = append(names, k.name())
	}
	return names
}
