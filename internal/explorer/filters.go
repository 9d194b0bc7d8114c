package explorer

import (
	"net/url"
	"slices"
	"strings"

	"github.com/zos-go/zos/internal/registry"
)

// nodeFilter is the parsed query of /nodes and /gateways: gridproxy's
// types.NodeFilter plus free_cru. Filters on data our nodes do not have
// are answered from what we know of them: no GPUs, no price, not
// certified ("Diy"), no extra fee, farms never dedicated; healthy is up.
type nodeFilter struct {
	statuses                               []string
	freeCRU, freeMRU, freeSRU, freeHRU     uint64
	totalCRU, totalMRU, totalSRU, totalHRU uint64
	freeIPs                                uint64
	country, countryContains               *string
	city, cityContains                     *string
	farmName, farmNameContains             *string
	farmIDs, nodeIDs, excluded             []uint64
	ipv4, ipv6, domain, hasIPv6            *bool
	dedicated, inDedicatedFarm             *bool
	rentable, rented, healthy              *bool
	ownedBy, rentedBy, rentableOrRentedBy  *uint64
	availableFor, nodeID, twinID           *uint64
	certification                          *string
	features                               []string // the node provisions every one
	hasGPU, gpuAvailable                   *bool
	numGPU                                 *uint64
	gpuNamed                               bool // a GPU device or vendor asked for: none here
	priceMin, priceMax                     *float64
	rare                                   bool // a filter matchRare checks is set
	lim                                    limit
	sortBy                                 sortKey
}

// nodeFilterParams are gridproxy's types.NodeFilter parameters and ours.
var nodeFilterParams = []string{
	"status", "free_mru", "free_hru", "free_sru", "total_mru", "total_hru", "total_sru", "total_cru",
	"country", "country_contains", "city", "city_contains", "region", "farm_name", "farm_name_contains",
	"farm_ids", "free_ips", "ipv4", "ipv6", "domain", "dedicated", "in_dedicated_farm", "rentable",
	"owned_by", "rented", "rented_by", "rentable_or_rented_by", "available_for", "node_id", "node_ids",
	"twin_id", "certification_type", "has_gpu", "num_gpu", "gpu_device_id", "gpu_device_name",
	"gpu_vendor_id", "gpu_vendor_name", "gpu_available", "healthy", "price_min", "price_max",
	"excluded", "has_ipv6", "features",
	"free_cru", // ours
}

func statusChoices() []string { return []string{StatusUp, StatusDown, StatusStandby} }

func parseNodeFilter(v url.Values, cfg Config) (nodeFilter, error) {
	q := newQuery(v, params(nodeFilterParams, limitParams)...)
	var f nodeFilter
	f.parse(q, "")
	f.lim = q.limit(cfg, sortKeyNames[:]...)
	for k := range numSortKeys {
		if k.name() == f.lim.sortBy {
			f.sortBy = k
		}
	}
	return f, q.err()
}

// parse reads the node filters named prefix+name (farms filter their nodes
// with node_free_mru and so on; /nodes with no prefix).
func (f *nodeFilter) parse(q *query, prefix string) {
	u := func(name string) uint64 { n, _ := q.uint(prefix+name, 64); return n }
	f.statuses = q.listOf(prefix+"status", statusChoices()...)
	f.freeCRU, f.freeMRU, f.freeSRU, f.freeHRU = u("free_cru"), u("free_mru"), u("free_sru"), u("free_hru")
	f.totalCRU, f.totalMRU, f.totalSRU, f.totalHRU = u("total_cru"), u("total_mru"), u("total_sru"), u("total_hru")
	f.freeIPs = u("free_ips")
	f.country, f.countryContains = q.strPtr(prefix+"country"), q.strPtr(prefix+"country_contains")
	f.city, f.cityContains = q.strPtr(prefix+"city"), q.strPtr(prefix+"city_contains")
	f.farmName, f.farmNameContains = q.strPtr(prefix+"farm_name"), q.strPtr(prefix+"farm_name_contains")
	f.farmIDs, f.nodeIDs, f.excluded = q.uintList(prefix+"farm_ids"), q.uintList(prefix+"node_ids"), q.uintList(prefix+"excluded")
	f.ipv4, f.ipv6, f.domain, f.hasIPv6 = q.bool(prefix+"ipv4"), q.bool(prefix+"ipv6"), q.bool(prefix+"domain"), q.bool(prefix+"has_ipv6")
	f.dedicated, f.inDedicatedFarm = q.bool(prefix+"dedicated"), q.bool(prefix+"in_dedicated_farm")
	f.rentable, f.rented, f.healthy = q.bool(prefix+"rentable"), q.bool(prefix+"rented"), q.bool(prefix+"healthy")
	f.ownedBy, f.rentedBy, f.rentableOrRentedBy = q.uintPtr(prefix+"owned_by"), q.uintPtr(prefix+"rented_by"), q.uintPtr(prefix+"rentable_or_rented_by")
	f.availableFor, f.nodeID, f.twinID = q.uintPtr(prefix+"available_for"), q.uintPtr(prefix+"node_id"), q.uintPtr(prefix+"twin_id")
	f.certification = q.strPtr(prefix + "certification_type")
	f.features = q.list(prefix + "features")
	f.hasGPU, f.gpuAvailable, f.numGPU = q.bool(prefix+"has_gpu"), q.bool(prefix+"gpu_available"), q.uintPtr(prefix+"num_gpu")
	for _, p := range []string{"gpu_device_id", "gpu_device_name", "gpu_vendor_id", "gpu_vendor_name"} {
		if _, ok := q.str(prefix + p); ok {
			f.gpuNamed = true
		}
	}
	f.priceMin, f.priceMax = q.float(prefix+"price_min"), q.float(prefix+"price_max")
	f.setRare()
}

func is(p *bool, v bool) bool { return p == nil || *p == v }

func idIs(p *uint64, id uint32) bool { return p == nil || *p == uint64(id) }

func hasID(ids []uint64, id uint32) bool { return slices.Contains(ids, uint64(id)) }

// hasAll reports whether have holds every one of want.
func hasAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// match reports whether the node passes every filter but status, healthy
// and country, which queryNodes checks with the clock and the snapshot's
// country index, and the text filters (matchText).
func (f *nodeFilter) match(m *nodeMeta) bool {
	switch {
	case f.nodeID != nil && *f.nodeID != uint64(m.id), f.twinID != nil && *f.twinID != uint64(m.twinID):
		return false
	case len(f.farmIDs) > 0 && !hasID(f.farmIDs, m.farmID):
		return false
	case m.free.CRU < f.freeCRU, m.free.MRU < f.freeMRU, m.free.SRU < f.freeSRU, m.free.HRU < f.freeHRU,
		uint64(m.freeIPs) < f.freeIPs:
		return false
	case f.ipv4 != nil && *f.ipv4 != m.ipv4, f.domain != nil && *f.domain != m.domain:
		return false
	}
	return !f.rare || f.matchRare(m)
}

// setRare notes whether any of the filters matchRare checks is set, so
// that the common queries skip it.
func (f *nodeFilter) setRare() {
	f.rare = len(f.nodeIDs) > 0 || len(f.excluded) > 0 || f.ownedBy != nil || f.ipv6 != nil || f.hasIPv6 != nil ||
		f.dedicated != nil || f.inDedicatedFarm != nil || f.rentable != nil || f.rented != nil ||
		f.rentedBy != nil || f.rentableOrRentedBy != nil || f.availableFor != nil ||
		f.hasGPU != nil || f.gpuAvailable != nil || f.gpuNamed || f.numGPU != nil || f.priceMin != nil || f.priceMax != nil ||
		len(f.features) > 0
}

func (f *nodeFilter) matchRare(m *nodeMeta) bool {
	switch {
	case len(f.nodeIDs) > 0 && !hasID(f.nodeIDs, m.id), hasID(f.excluded, m.id), !idIs(f.ownedBy, m.farmTwin):
		return false
	case !is(f.ipv6, m.ipv6), !is(f.hasIPv6, m.ipv6):
		return false
	case !hasAll(m.features, f.features):
		return false
	case !is(f.dedicated, m.dedicated), !is(f.inDedicatedFarm, false), !is(f.rentable, m.rentable),
		!is(f.rented, m.renter != 0):
		return false
	case !idIs(f.rentedBy, m.renter):
		return false
	case f.rentableOrRentedBy != nil && !m.rentable && uint64(m.renter) != *f.rentableOrRentedBy:
		return false
	// available_for: rented by the twin, or not rented (farms are never
	// dedicated and extra fees never set here).
	case f.availableFor != nil && m.renter != 0 && uint64(m.renter) != *f.availableFor:
		return false
	case !is(f.hasGPU, false), f.gpuAvailable != nil && *f.gpuAvailable, f.gpuNamed,
		f.numGPU != nil && *f.numGPU > 0:
		return false
	case f.priceMin != nil && *f.priceMin > 0, f.priceMax != nil && *f.priceMax < 0:
		return false
	}
	return true
}

// needsEntry reports whether matchText has anything to check.
func (f *nodeFilter) needsEntry() bool {
	return f.totalCRU+f.totalMRU+f.totalSRU+f.totalHRU > 0 || f.countryContains != nil ||
		f.city != nil || f.cityContains != nil || f.farmName != nil || f.farmNameContains != nil ||
		f.certification != nil
}

// matchText checks the filters on the full record.
func (f *nodeFilter) matchText(e *nodeEntry) bool {
	n := e.node
	farm := ""
	if e.farm != nil {
		farm = e.farm.farm.Name
	}
	switch {
	case n.Total.CRU < f.totalCRU, n.Total.MRU < f.totalMRU, n.Total.SRU < f.totalSRU, n.Total.HRU < f.totalHRU:
		return false
	case f.countryContains != nil && !containsFold(n.Location.Country, *f.countryContains):
		return false
	case f.city != nil && !strings.EqualFold(n.Location.City, *f.city),
		f.cityContains != nil && !containsFold(n.Location.City, *f.cityContains):
		return false
	case f.farmName != nil && !strings.EqualFold(farm, *f.farmName),
		f.farmNameContains != nil && !containsFold(farm, *f.farmNameContains):
		return false
	case f.certification != nil && !strings.EqualFold(*f.certification, "diy"):
		return false
	}
	return true
}

// farmFilter is the parsed query of /farms: gridproxy's types.FarmFilter.
type farmFilter struct {
	freeIPs, totalIPs  uint64
	stellarAddress     *string
	pricingPolicyID    *uint64
	farmID, twinID     *uint64
	name, nameContains *string
	certification      *string
	dedicated          *bool
	nodes              nodeFilter // the node_ filters: at least one node passes
	nodeFilters        bool
	lim                limit
}

var farmFilterParams = []string{
	"free_ips", "total_ips", "stellar_address", "pricing_policy_id", "farm_id", "twin_id", "name",
	"name_contains", "certification_type", "dedicated", "node_free_mru", "node_free_hru", "node_free_sru",
	"node_total_cru", "node_status", "node_rented_by", "node_available_for", "node_has_gpu",
	"node_has_ipv6", "node_certified", "node_features", "country", "region",
}

var farmSortKeys = []string{"name", "farm_id", "twin_id", "free_ips", "total_ips", "used_ips", "dedicated"}

func parseFarmFilter(v url.Values, cfg Config) (farmFilter, error) {
	q := newQuery(v, params(farmFilterParams, limitParams)...)
	var f farmFilter
	f.freeIPs, _ = q.uint("free_ips", 64)
	f.totalIPs, _ = q.uint("total_ips", 64)
	f.stellarAddress, f.pricingPolicyID = q.strPtr("stellar_address"), q.uintPtr("pricing_policy_id")
	f.farmID, f.twinID = q.uintPtr("farm_id"), q.uintPtr("twin_id")
	f.name, f.nameContains = q.strPtr("name"), q.strPtr("name_contains")
	f.certification, f.dedicated = q.strPtr("certification_type"), q.bool("dedicated")

	n := &f.nodes
	n.freeMRU, _ = q.uint("node_free_mru", 64)
	n.freeHRU, _ = q.uint("node_free_hru", 64)
	n.freeSRU, _ = q.uint("node_free_sru", 64)
	n.totalCRU, _ = q.uint("node_total_cru", 64)
	n.statuses = q.listOf("node_status", statusChoices()...)
	n.rentedBy, n.availableFor = q.uintPtr("node_rented_by"), q.uintPtr("node_available_for")
	n.hasGPU, n.hasIPv6 = q.bool("node_has_gpu"), q.bool("node_has_ipv6")
	if c := q.bool("node_certified"); c != nil && *c {
		certified := "Certified"
		n.certification = &certified
	}
	n.country = q.strPtr("country")
	n.setRare()
	for _, p := range farmFilterParams {
		if _, ok := q.str(p); ok && (strings.HasPrefix(p, "node_") || p == "country") {
			f.nodeFilters = true
		}
	}
	f.lim = q.limit(cfg, farmSortKeys...)
	return f, q.err()
}

func (f *farmFilter) match(fe *farmEntry) bool {
	farm := &fe.farm
	switch {
	case uint64(fe.freeIPs) < f.freeIPs, uint64(len(farm.PublicIPs)) < f.totalIPs:
		return false
	case f.stellarAddress != nil && *f.stellarAddress != "",
		f.pricingPolicyID != nil && *f.pricingPolicyID != 0:
		return false
	case !idIs(f.farmID, farm.ID), !idIs(f.twinID, farm.TwinID):
		return false
	case f.name != nil && !strings.EqualFold(farm.Name, *f.name),
		f.nameContains != nil && !containsFold(farm.Name, *f.nameContains):
		return false
	case f.certification != nil && !strings.EqualFold(*f.certification, "NotCertified"),
		!is(f.dedicated, false):
		return false
	}
	return true
}

// twinFilter is the parsed query of /twins: gridproxy's types.TwinFilter.
type twinFilter struct {
	twinID                      *uint64
	accountID, relay, publicKey *string
	lim                         limit
}

var twinSortKeys = []string{"relay", "public_key", "account_id", "twin_id"}

func parseTwinFilter(v url.Values, cfg Config) (twinFilter, error) {
	q := newQuery(v, params([]string{"twin_id", "account_id", "relay", "public_key"}, limitParams)...)
	f := twinFilter{twinID: q.uintPtr("twin_id"), accountID: q.strPtr("account_id"),
		relay: q.strPtr("relay"), publicKey: q.strPtr("public_key")}
	f.lim = q.limit(cfg, twinSortKeys...)
	return f, q.err()
}

func (f *twinFilter) match(t *Twin) bool {
	return idIs(f.twinID, t.TwinID) && (f.accountID == nil || *f.accountID == t.AccountID) &&
		(f.relay == nil || *f.relay == t.Relay) && (f.publicKey == nil || strings.EqualFold(*f.publicKey, t.PublicKey))
}

// contractFilter is the parsed query of /contracts: gridproxy's
// types.ContractFilter.
type contractFilter struct {
	contractID, twinID, nodeID, farmID *uint64
	typ                                string
	states                             []string // lower case
	name, deploymentData               *string
	deploymentHash, farmName           *string
	publicIPs                          uint64
	lim                                limit
}

var contractFilterParams = []string{
	"contract_id", "twin_id", "node_id", "type", "state", "name", "number_of_public_ips",
	"deployment_data", "deployment_hash", "farm_name", "farm_id",
}

var contractSortKeys = []string{"twin_id", "contract_id", "type", "state", "created_at"}

func parseContractFilter(v url.Values, cfg Config) (contractFilter, error) {
	q := newQuery(v, params(contractFilterParams, limitParams)...)
	var f contractFilter
	f.contractID, f.twinID, f.nodeID, f.farmID = q.uintPtr("contract_id"), q.uintPtr("twin_id"), q.uintPtr("node_id"), q.uintPtr("farm_id")
	f.typ = q.oneOf("type", registry.TypeNode, registry.TypeName, registry.TypeRent)
	// tfchain's states; ours ("created", "canceled") are taken too.
	for _, s := range q.listOf("state", ContractCreated, ContractDeleted, "GracePeriod", "OutOfFunds", registry.StateCanceled) {
		if s == registry.StateCanceled {
			s = ContractDeleted
		}
		f.states = append(f.states, s)
	}
	f.name, f.deploymentData = q.strPtr("name"), q.strPtr("deployment_data")
	f.deploymentHash, f.farmName = q.strPtr("deployment_hash"), q.strPtr("farm_name")
	f.publicIPs, _ = q.uint("number_of_public_ips", 64)
	f.lim = q.limit(cfg, contractSortKeys...)
	return f, q.err()
}

// match checks contract c, whose node's farm is farm (nil if none).
func (f *contractFilter) match(c *registry.Contract, farm *registry.Farm) bool {
	farmID, farmName := c.FarmID, ""
	if farm != nil {
		farmID, farmName = farm.ID, farm.Name
	}
	switch {
	case f.contractID != nil && *f.contractID != c.ID, !idIs(f.twinID, c.TwinID), !idIs(f.nodeID, c.NodeID):
		return false
	case f.typ != "" && c.Type != f.typ, len(f.states) > 0 && !slices.Contains(f.states, contractState(c.State)):
		return false
	case f.name != nil && *f.name != c.Name, f.deploymentData != nil && *f.deploymentData != c.Metadata,
		f.deploymentHash != nil && *f.deploymentHash != c.DeploymentHash:
		return false
	case uint64(c.PublicIPsCount) < f.publicIPs:
		return false
	case f.farmID != nil && (c.Type == registry.TypeName || uint64(farmID) != *f.farmID),
		f.farmName != nil && (c.Type == registry.TypeName || !strings.EqualFold(farmName, *f.farmName)):
		return false
	}
	return true
}

// ipFilter is the parsed query of /public_ips: gridproxy's
// types.PublicIpFilter (farm_ids) and the swagger's /ips (farm_id).
type ipFilter struct {
	farmIDs     []uint64
	free        *bool
	ip, gateway *string
	lim         limit
}

var ipSortKeys = []string{"ip", "farm_id", "contract_id"}

func parseIPFilter(v url.Values, cfg Config) (ipFilter, error) {
	q := newQuery(v, params([]string{"farm_ids", "farm_id", "free", "ip", "gateway"}, limitParams)...)
	f := ipFilter{farmIDs: append(q.uintList("farm_ids"), q.uintList("farm_id")...),
		free: q.bool("free"), ip: q.strPtr("ip"), gateway: q.strPtr("gateway")}
	f.lim = q.limit(cfg, ipSortKeys...)
	return f, q.err()
}

func (f *ipFilter) match(ip *PublicIP) bool {
	addr, _, _ := strings.Cut(ip.IP, "/")
	switch {
	case len(f.farmIDs) > 0 && !hasID(f.farmIDs, ip.FarmID), !is(f.free, ip.ContractID == 0):
		return false
	case f.ip != nil && *f.ip != ip.IP && *f.ip != addr, f.gateway != nil && *f.gateway != ip.Gateway:
		return false
	}
	return true
}
