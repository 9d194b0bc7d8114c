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

// nodeEntry is a node with its free capacity, farm and contracts.
type nodeEntry struct {
	node *registry.Node // in the slice the Source returned
	free registry.Resources
	farm *farmEntry // nil when the farm is unknown
	// rent is the node's active rent contract, nil if not rented;
	// contracts counts its active node contracts.
	rent      *registry.Contract
	contracts int
}

// dedicated is gridproxy's rule: the farm is dedicated (ours never are),
// the node runs no node contract, or it is rented.
func (e *nodeEntry) dedicated() bool { return e.contracts == 0 || e.rent != nil }

// rentable: not rented and running no node contract (what the registry
// checks before renting).
func (e *nodeEntry) rentable() bool { return e.rent == nil && e.contracts == 0 }

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
	renter    uint32 // twin renting the node, 0 if none
	farmTwin  uint32 // owner of the node's farm, 0 if the farm is unknown
	powerDown bool
	domain    bool
	ipv4      bool // public config has an IPv4 address
	ipv6      bool // public config has an IPv6 address
	rentable  bool
	dedicated bool
	features  []string // the workload types the node provisions, as it reported them
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

	publicIPs, freePublicIPs int
	contractsByState         map[string]int
	byOrder                  [numSortKeys]lazyOrder
}

// lazyOrder is the node order for one sort key, computed on first use.
type lazyOrder struct {
	once  sync.Once
	order []int32
}

// buildSnapshot indexes the records; it keeps and reorders the slices.
func buildSnapshot(at time.Time, nodes []registry.Node, farms []registry.Farm, twins []registry.Twin, contracts []registry.Contract) *snapshot {
	s := &snapshot{
		at:               at,
		nodes:            make([]nodeEntry, 0, len(nodes)),
		meta:             make([]nodeMeta, 0, len(nodes)),
		nodeJSON:         make([]atomic.Pointer[[]byte], len(nodes)),
		countryIDs:       map[string]uint32{},
		nodeByID:         make(map[uint32]int32, len(nodes)),
		farms:            make([]*farmEntry, 0, len(farms)),
		farmByID:         make(map[uint32]*farmEntry, len(farms)),
		twins:            twins,
		twinByID:         make(map[uint32]int32, len(twins)),
		contracts:        contracts,
		contractsByState: map[string]int{},
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
		s.publicIPs += len(f.PublicIPs)
		s.freePublicIPs += fe.freeIPs
	}
	slices.SortFunc(s.farms, func(a, b *farmEntry) int { return cmp.Compare(a.farm.ID, b.farm.ID) })

	slices.SortFunc(s.contracts, func(a, b registry.Contract) int { return cmp.Compare(a.ID, b.ID) })
	rents := map[uint32]*registry.Contract{}
	nodeContracts := map[uint32]int{}
	for i := range s.contracts {
		c := &s.contracts[i]
		s.contractsByState[contractState(c.State)]++
		if c.State != registry.StateCreated {
			continue
		}
		switch c.Type {
		case registry.TypeRent:
			rents[c.NodeID] = c
		case registry.TypeNode:
			nodeContracts[c.NodeID]++
		}
	}

	slices.SortFunc(nodes, func(a, b registry.Node) int { return cmp.Compare(a.ID, b.ID) })
	for k := range nodes {
		n := &nodes[k]
		e := nodeEntry{node: n, free: Free(n), farm: s.farmByID[n.FarmID], rent: rents[n.ID], contracts: nodeContracts[n.ID]}
		m := nodeMeta{
			free:      e.free,
			updated:   unixNano(n.Updated),
			id:        n.ID,
			farmID:    n.FarmID,
			twinID:    n.TwinID,
			freeIPs:   uint32(e.freeIPs()),
			powerDown: n.Power == registry.PowerDown || n.PowerTarget == registry.PowerDown,
			rentable:  e.rentable(),
			dedicated: e.dedicated(),
			features:  n.Features,
		}
		if pc := n.PublicConfig; pc != nil {
			m.domain, m.ipv4, m.ipv6 = pc.Domain != "", pc.IPv4 != "", pc.IPv6 != ""
		}
		if e.rent != nil {
			m.renter = e.rent.TwinID
		}
		if e.farm != nil {
			m.farmTwin = e.farm.farm.TwinID
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
	}

	slices.SortFunc(s.twins, func(a, b registry.Twin) int { return cmp.Compare(a.ID, b.ID) })
	for i, t := range s.twins {
		s.twinByID[t.ID] = int32(i)
	}
	return s
}

// nodeTotals sums what /stats reports over the nodes whose status at now
// is in statuses (every node when statuses is empty).
func (s *snapshot) nodeTotals(statuses []string, now time.Time) Stats {
	st := Stats{NodesDistribution: map[string]int{}}
	nowNano := unixNano(now)
	var total, used, free registry.Resources
	for i := range s.nodes {
		m := &s.meta[i]
		if len(statuses) > 0 && !slices.Contains(statuses, m.status(nowNano)) {
			continue
		}
		e := &s.nodes[i]
		st.Nodes++
		st.NodesDistribution[e.node.Location.Country]++
		total = addResources(total, e.node.Total)
		used = addResources(used, e.node.Used)
		free = addResources(free, e.free)
		if m.ipv4 || m.ipv6 {
			st.AccessNodes++
			if m.domain {
				st.Gateways++
			}
		}
		if m.dedicated {
			st.DedicatedNodes++
		}
	}
	st.Countries = len(st.NodesDistribution)
	st.TotalCRU, st.TotalSRU, st.TotalMRU, st.TotalHRU = total.CRU, total.SRU, total.MRU, total.HRU
	st.Total, st.Used, st.Free = capacity(total), capacity(used), capacity(free)
	return st
}

// order returns the node indexes sorted ascending by key, ties by node ID.
func (s *snapshot) order(key sortKey) []int32 {
	lo := &s.byOrder[key]
	lo.once.Do(func() {
		lo.order = make([]int32, len(s.nodes))
		for i := range lo.order {
			lo.order[i] = int32(i)
		}
		if key == sortNodeID || key == sortStatus {
			return // nodes are stored by ID; status is sorted per query
		}
		slices.SortStableFunc(lo.order, func(a, b int32) int {
			return key.compare(&s.nodes[a], &s.nodes[b])
		})
	})
	return lo.order
}

// sortKey names a node order.
type sortKey int

// The node orders: gridproxy's sort_by values, then ours.
const (
	sortNodeID sortKey = iota
	sortStatus
	sortFarmID
	sortTwinID
	sortUptime
	sortCreated
	sortUpdatedAt
	sortCountry
	sortCity
	sortDedicatedFarm
	sortRentContractID
	sortTotalCRU
	sortTotalMRU
	sortTotalHRU
	sortTotalSRU
	sortUsedCRU
	sortUsedMRU
	sortUsedHRU
	sortUsedSRU
	sortNumGPU
	sortExtraFee
	sortPriceUSD
	sortRented
	sortRentable
	sortFreeCRU
	sortFreeMRU
	sortFreeSRU
	sortFreeHRU
	sortFreeIPs
	sortUpdated // ours, the same as updated_at
	numSortKeys
)

var sortKeyNames = [numSortKeys]string{
	"node_id", "status", "farm_id", "twin_id", "uptime", "created", "updated_at", "country", "city",
	"dedicated_farm", "rent_contract_id", "total_cru", "total_mru", "total_hru", "total_sru",
	"used_cru", "used_mru", "used_hru", "used_sru", "num_gpu", "extra_fee", "price_usd", "rented",
	"rentable", "free_cru", "free_mru", "free_sru", "free_hru", "free_ips", "updated",
}

// name is the key's value of the sort_by query parameter.
func (k sortKey) name() string { return sortKeyNames[k] }

// compare orders two nodes by the key; equal keys compare equal (the
// stable sort keeps them by ID).
func (k sortKey) compare(a, b *nodeEntry) int {
	switch k {
	case sortCountry:
		return strings.Compare(a.node.Location.Country, b.node.Location.Country)
	case sortCity:
		return strings.Compare(a.node.Location.City, b.node.Location.City)
	}
	return cmp.Compare(k.value(a), k.value(b))
}

// value is what a numeric key sorts a node by.
func (k sortKey) value(e *nodeEntry) int64 {
	n := e.node
	switch k {
	case sortFarmID:
		return int64(n.FarmID)
	case sortTwinID:
		return int64(n.TwinID)
	case sortUptime:
		return clamp(n.Uptime)
	case sortCreated:
		return unixNano(n.Created)
	case sortUpdatedAt, sortUpdated:
		return unixNano(n.Updated)
	case sortRentContractID:
		if e.rent != nil {
			return clamp(e.rent.ID)
		}
		return 0
	case sortTotalCRU:
		return clamp(n.Total.CRU)
	case sortTotalMRU:
		return clamp(n.Total.MRU)
	case sortTotalHRU:
		return clamp(n.Total.HRU)
	case sortTotalSRU:
		return clamp(n.Total.SRU)
	case sortUsedCRU:
		return clamp(n.Used.CRU)
	case sortUsedMRU:
		return clamp(n.Used.MRU)
	case sortUsedHRU:
		return clamp(n.Used.HRU)
	case sortUsedSRU:
		return clamp(n.Used.SRU)
	case sortRented:
		return b2i(e.rent != nil)
	case sortRentable:
		return b2i(e.rentable())
	case sortFreeCRU:
		return clamp(e.free.CRU)
	case sortFreeMRU:
		return clamp(e.free.MRU)
	case sortFreeSRU:
		return clamp(e.free.SRU)
	case sortFreeHRU:
		return clamp(e.free.HRU)
	case sortFreeIPs:
		return int64(e.freeIPs())
	case sortNodeID:
		return int64(n.ID)
	}
	return 0 // dedicated_farm, num_gpu, extra_fee, price_usd: the same for every node here
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func clamp(v uint64) int64 { return int64(min(v, 1<<63-1)) }

func (e *nodeEntry) freeIPs() int {
	if e.farm == nil {
		return 0
	}
	return e.farm.freeIPs
}
