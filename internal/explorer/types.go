package explorer

import (
	"strconv"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// The JSON the API serves follows gridproxy's types (tfgrid-sdk-go
// grid-proxy/pkg/types, swagger at /work/shared/reference/gridproxy): field
// names, types and units (unix seconds, bytes). Fields of ours that
// gridproxy lacks come after them, snake_case, and gridproxy's clients
// ignore them. Fields gridproxy has but our grid has no data for (GPUs,
// DMI, speed, prices, certification) are served with their zero value.

// Capacity is gridproxy's types.Capacity: cores and bytes.
type Capacity struct {
	CRU uint64 `json:"cru"`
	SRU uint64 `json:"sru"`
	HRU uint64 `json:"hru"`
	MRU uint64 `json:"mru"`
}

func capacity(r registry.Resources) Capacity {
	return Capacity{CRU: r.CRU, SRU: r.SRU, HRU: r.HRU, MRU: r.MRU}
}

// Location is gridproxy's types.Location; the coordinates are null when
// the node reported none.
type Location struct {
	Country   string   `json:"country"`
	City      string   `json:"city"`
	Longitude *float64 `json:"longitude"`
	Latitude  *float64 `json:"latitude"`
}

// PublicConfig is gridproxy's types.PublicConfig; empty strings when unset.
type PublicConfig struct {
	Domain string `json:"domain"`
	GW4    string `json:"gw4"`
	GW6    string `json:"gw6"`
	IPv4   string `json:"ipv4"`
	IPv6   string `json:"ipv6"`
}

// NodePower is the node's power state and the farmer's target, "Up" or
// "Down" as tfchain writes them.
type NodePower struct {
	State  string `json:"state"`
	Target string `json:"target"`
}

// Dmi, Speed and NodeGPU are hardware reports our nodes do not make; they
// are served empty so that gridproxy's clients decode them.
type Dmi struct {
	BIOS struct {
		Vendor  string `json:"vendor"`
		Version string `json:"version"`
	} `json:"bios"`
	Baseboard struct {
		Manufacturer string `json:"manufacturer"`
		ProductName  string `json:"product_name"`
	} `json:"baseboard"`
	Processor  []struct{} `json:"processor"`
	Memory     []struct{} `json:"memory"`
	NodeTwinID uint32     `json:"node_twin_id"`
	UpdatedAt  int64      `json:"updatedAt"`
}

// Speed is the node's measured bandwidth in bit/s (none measured here).
type Speed struct {
	Upload     float64 `json:"upload"`
	Download   float64 `json:"download"`
	NodeTwinID uint32  `json:"node_twin_id"`
	UpdatedAt  int64   `json:"updatedAt"`
}

// NodeGPU is one GPU of a node (our nodes report none).
type NodeGPU struct {
	ID        string `json:"id"`
	Vendor    string `json:"vendor"`
	Device    string `json:"device"`
	Contract  int    `json:"contract"`
	UpdatedAt int64  `json:"updated_at"`
}

// nodeCommon holds the fields of gridproxy's types.Node and
// types.NodeWithNestedCapacity that come before the capacity, in the
// order gridproxy writes them, except status and healthy, which change
// with the clock (appendNode puts them first).
type nodeCommon struct {
	ID              string `json:"id"`
	NodeID          uint32 `json:"nodeId"`
	FarmID          uint32 `json:"farmId"`
	FarmName        string `json:"farmName"`
	TwinID          uint32 `json:"twinId"`
	Country         string `json:"country"`
	GridVersion     int    `json:"gridVersion"`
	City            string `json:"city"`
	Uptime          int64  `json:"uptime"`
	Created         int64  `json:"created"`
	FarmingPolicyID int    `json:"farmingPolicyId"`
	UpdatedAt       int64  `json:"updatedAt"`
}

// nodeRest holds the fields after the capacity.
type nodeRest struct {
	Location          Location     `json:"location"`
	PublicConfig      PublicConfig `json:"publicConfig"`
	CertificationType string       `json:"certificationType"`
	Dedicated         bool         `json:"dedicated"`
	InDedicatedFarm   bool         `json:"inDedicatedFarm"`
	RentContractID    uint64       `json:"rentContractId"`
	Rented            bool         `json:"rented"`
	Rentable          bool         `json:"rentable"`
	RentedByTwinID    uint32       `json:"rentedByTwinId"`
	SerialNumber      string       `json:"serialNumber"`
	Power             NodePower    `json:"power"`
	NumGPU            int          `json:"num_gpu"`
	ExtraFee          uint64       `json:"extraFee"`
	Dmi               Dmi          `json:"dmi"`
	Speed             Speed        `json:"speed"`
	GPUs              []NodeGPU    `json:"gpus"`
	PriceUSD          float64      `json:"price_usd"`
	FarmFreeIPs       int          `json:"farm_free_ips"`
	Features          []string     `json:"features"`

	// Ours. Free is total - used - reserved (§10.2 reservations);
	// Reserved what the system keeps, as Reserved computes it.
	Free        Capacity             `json:"free_resources"`
	Reserved    Capacity             `json:"reserved_resources"`
	Virtualized bool                 `json:"virtualized"`
	Version     string               `json:"version"`
	Interfaces  []registry.Interface `json:"interfaces"`
	// Channel is the release channel the node follows (its farm's;
	// DefaultChannel when the farm chose none); UpdateFailed the releases
	// it rolled back from, newest last.
	Channel      string   `json:"channel"`
	UpdateFailed []string `json:"update_failed"`
}

// DefaultChannel is the channel of nodes whose farm chose none (the
// nodes' --update-channel default, netboot's).
const DefaultChannel = "production"

// Node is a node as /nodes lists it: gridproxy's types.Node (status and
// healthy first) plus our extra fields.
type Node struct {
	Status  string `json:"status"`
	Healthy bool   `json:"healthy"`
	nodeCommon
	Total Capacity `json:"total_resources"`
	Used  Capacity `json:"used_resources"`
	nodeRest
}

// CapacityResult is the nested capacity of a single node.
type CapacityResult struct {
	Total Capacity `json:"total_resources"`
	Used  Capacity `json:"used_resources"`
}

// NodeWithNestedCapacity is a node as /nodes/{id} serves it: gridproxy's
// type of that name plus our extra fields.
type NodeWithNestedCapacity struct {
	Status  string `json:"status"`
	Healthy bool   `json:"healthy"`
	nodeCommon
	Capacity CapacityResult `json:"capacity"`
	nodeRest
}

// NodeStatus is the body of /nodes/{id}/status.
type NodeStatus struct {
	Status string `json:"status"`
}

// PublicIP is gridproxy's types.PublicIP. ID is the address: our farms
// keep no other id for it.
type PublicIP struct {
	ID         string `json:"id"`
	IP         string `json:"ip"`
	Gateway    string `json:"gateway"`
	ContractID uint64 `json:"contract_id"`
	FarmID     uint32 `json:"farm_id"`
}

func publicIP(farm uint32, ip registry.PublicIP) PublicIP {
	return PublicIP{ID: ip.IP, IP: ip.IP, Gateway: ip.Gateway, ContractID: ip.ContractID, FarmID: farm}
}

// Farm is gridproxy's types.Farm plus our counts.
type Farm struct {
	Name              string     `json:"name"`
	FarmID            uint32     `json:"farmId"`
	TwinID            uint32     `json:"twinId"`
	PricingPolicyID   int        `json:"pricingPolicyId"`
	CertificationType string     `json:"certificationType"`
	StellarAddress    string     `json:"stellarAddress"`
	Dedicated         bool       `json:"dedicated"`
	PublicIPs         []PublicIP `json:"publicIps"`

	// Ours.
	TotalIPs  int `json:"total_ips"`
	FreeIPs   int `json:"free_ips"`
	UsedIPs   int `json:"used_ips"`
	NodeCount int `json:"node_count"`
	NodesUp   int `json:"nodes_up"`
}

// Twin is gridproxy's types.Twin: AccountID is the SS58 address (format
// 42) of the twin's ed25519 key, the account tfchain would know it by;
// PublicKey is the key in hex.
type Twin struct {
	TwinID    uint32 `json:"twinId"`
	AccountID string `json:"accountId"`
	Relay     string `json:"relay"`
	PublicKey string `json:"publicKey"`
}

func twinView(t registry.Twin) Twin {
	return Twin{TwinID: t.ID, AccountID: accountID(t.PublicKey), Relay: t.Relay, PublicKey: t.PublicKey}
}

// Contract states as gridproxy serves them (tfchain's names).
const (
	ContractCreated = "Created"
	ContractDeleted = "Deleted"
)

// Contract is gridproxy's types.Contract with Details of the type's shape
// (NodeContractDetails, NameContractDetails or RentContractDetails).
type Contract struct {
	ContractID uint64 `json:"contract_id"`
	TwinID     uint32 `json:"twin_id"`
	State      string `json:"state"`
	CreatedAt  int64  `json:"created_at"`
	Type       string `json:"type"`
	Details    any    `json:"details"`

	// Ours. Proof is the twin's signed request behind the contract's
	// last change, which registry.VerifyContract checks.
	UpdatedAt int64               `json:"updated_at"`
	Used      Capacity            `json:"used_resources"`
	PublicIPs []registry.PublicIP `json:"public_ips"`
	Proof     *registry.Proof     `json:"proof,omitempty"`
	// BillingState is the registry's billing state of the contract
	// (grace_period, active, out_of_funds; empty when never in grace).
	BillingState string `json:"billing_state,omitempty"`
}

// NodeContractDetails are the details of a node contract.
type NodeContractDetails struct {
	NodeID            uint32 `json:"nodeId"`
	DeploymentData    string `json:"deployment_data"`
	DeploymentHash    string `json:"deployment_hash"`
	NumberOfPublicIPs uint32 `json:"number_of_public_ips"`
	FarmName          string `json:"farm_name"`
	FarmID            uint32 `json:"farm_id"`
}

// NameContractDetails are the details of a name contract.
type NameContractDetails struct {
	Name string `json:"name"`
}

// RentContractDetails are the details of a rent contract.
type RentContractDetails struct {
	NodeID   uint32 `json:"nodeId"`
	FarmName string `json:"farm_name"`
	FarmID   uint32 `json:"farm_id"`
}

// contractState is the tfchain name of our contract state.
func contractState(s string) string {
	if s == registry.StateCreated {
		return ContractCreated
	}
	return ContractDeleted
}

// Stats is gridproxy's types.Stats (flat totals over the nodes of the
// asked statuses) plus ours.
type Stats struct {
	Nodes             int            `json:"nodes"`
	Farms             int            `json:"farms"`
	Countries         int            `json:"countries"`
	TotalCRU          uint64         `json:"totalCru"`
	TotalSRU          uint64         `json:"totalSru"`
	TotalMRU          uint64         `json:"totalMru"`
	TotalHRU          uint64         `json:"totalHru"`
	PublicIPs         int            `json:"publicIps"`
	AccessNodes       int            `json:"accessNodes"`
	Gateways          int            `json:"gateways"`
	Twins             int            `json:"twins"`
	Contracts         int            `json:"contracts"`
	NodesDistribution map[string]int `json:"nodesDistribution"`
	GPUs              int            `json:"gpus"`
	DedicatedNodes    int            `json:"dedicatedNodes"`
	WorkloadsNumber   int            `json:"workloads_number"`

	// Ours: nodes by status (all statuses, whatever the filter), contracts
	// by state, free public IPs, and the capacity of the selected nodes.
	NodesByStatus    map[string]int `json:"nodes_by_status"`
	ContractsByState map[string]int `json:"contracts_by_state"`
	FreePublicIPs    int            `json:"free_public_ips"`
	Total            Capacity       `json:"total_resources"`
	Used             Capacity       `json:"used_resources"`
	Free             Capacity       `json:"free_resources"`
	// Updated is when the explorer last read the registry, unix seconds.
	Updated int64 `json:"updated"`
	// Store is the state of the grid's store, when the explorer knows it.
	Store *StoreStatus `json:"store,omitempty"`
}

// StoreStatus says whether the grid's store takes writes, and why not.
type StoreStatus struct {
	Writable bool   `json:"writable"`
	Reason   string `json:"reason,omitempty"` // "0.5 MiB free, reserve 0.8 MiB"
}

// unixSeconds is t in unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func powerName(s string) string {
	if s == registry.PowerDown {
		return "Down"
	}
	return "Up"
}

// nodeParts builds the clock-independent parts of node e's view.
func (e *nodeEntry) parts() (nodeCommon, nodeRest) {
	n := e.node
	c := nodeCommon{
		ID: strconv.FormatUint(uint64(n.ID), 10), NodeID: n.ID, FarmID: n.FarmID, TwinID: n.TwinID,
		Country: n.Location.Country, City: n.Location.City,
		Uptime: int64(min(n.Uptime, 1<<63-1)), Created: unixSeconds(n.Created), UpdatedAt: unixSeconds(n.Updated),
	}
	if e.farm != nil {
		c.FarmName = e.farm.farm.Name
	}
	state := powerName(n.Power)
	target := state
	if n.PowerTarget != "" {
		target = powerName(n.PowerTarget)
	}
	r := nodeRest{
		Location:          Location{Country: n.Location.Country, City: n.Location.City},
		CertificationType: "Diy",
		Dedicated:         e.dedicated(),
		Rented:            e.rent != nil,
		Rentable:          e.rentable(),
		Power:             NodePower{State: state, Target: target},
		GPUs:              []NodeGPU{},
		FarmFreeIPs:       e.freeIPs(),
		Features:          append([]string{}, n.Features...),
		Free:              capacity(e.free),
		Reserved:          capacity(Reserved(n)),
		Virtualized:       n.Virtualized,
		Version:           n.Version,
		Interfaces:        n.Interfaces,
		Channel:           DefaultChannel,
		UpdateFailed:      append([]string{}, n.UpdateFailed...),
	}
	if e.farm != nil && e.farm.farm.Channel != "" {
		r.Channel = e.farm.farm.Channel
	}
	r.Dmi.Processor, r.Dmi.Memory = []struct{}{}, []struct{}{}
	if f := n.Firmware; f != nil {
		r.Dmi.BIOS.Vendor, r.Dmi.BIOS.Version = f.BIOSVendor, f.BIOSVersion
		r.Dmi.Baseboard.Manufacturer, r.Dmi.Baseboard.ProductName = f.BoardManufacturer, f.BoardProduct
	}
	r.Dmi.NodeTwinID, r.Speed.NodeTwinID = n.TwinID, n.TwinID
	if r.Interfaces == nil {
		r.Interfaces = []registry.Interface{}
	}
	if n.Location.Latitude != 0 || n.Location.Longitude != 0 {
		lat, long := n.Location.Latitude, n.Location.Longitude
		r.Location.Latitude, r.Location.Longitude = &lat, &long
	}
	if pc := n.PublicConfig; pc != nil {
		r.PublicConfig = PublicConfig{Domain: pc.Domain, GW4: pc.GW4, GW6: pc.GW6, IPv4: pc.IPv4, IPv6: pc.IPv6}
	}
	if e.rent != nil {
		r.RentContractID = e.rent.ID
		r.RentedByTwinID = e.rent.TwinID
	}
	return c, r
}
