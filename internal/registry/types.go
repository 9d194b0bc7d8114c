// Package registry is the grid's registry of twins, farms, nodes and
// contracts, kept in JetStream KV buckets. Every write is a request signed by
// its owner's key and checked here; IDs come from atomic counters; events go
// out on per-node subjects and are kept in a stream. zgrid serves it; nodes,
// zosctl and the explorer read it.
package registry

import (
	"fmt"
	"math"
	"math/bits"
	"time"

	"github.com/zos-go/zos/internal/billing"
)

// Twin is an identity on the grid: users, farmers and nodes each have one.
type Twin struct {
	ID uint32 `json:"id"`
	// PublicKey is the hex ed25519 public key; it signs every write and
	// every relay envelope of the twin.
	PublicKey string `json:"public_key"`
	// Relay is a hint of where the twin is reachable (empty: this grid).
	Relay string `json:"relay,omitempty"`
}

// PublicIP is one public address of a farm.
type PublicIP struct {
	IP         string `json:"ip"`          // address with prefix, "185.1.2.3/24"
	Gateway    string `json:"gateway"`     // "185.1.2.1"
	ContractID uint64 `json:"contract_id"` // 0 when free
}

// Farm groups nodes under a farmer's twin and holds the public IPs.
type Farm struct {
	ID        uint32     `json:"id"`
	Name      string     `json:"name"`
	TwinID    uint32     `json:"twin_id"`
	PublicIPs []PublicIP `json:"public_ips"`
	// Channel is the release channel the farm's nodes follow ("": the
	// nodes' own default).
	Channel string `json:"channel,omitempty"`
	// PowerPolicy is what the grid keeps awake in the farm (nil: the
	// grid never puts its nodes to standby or wakes them by itself).
	PowerPolicy *PowerPolicy `json:"power_policy,omitempty"`
	// Pricing is the farm's own prices of capacity, IPs and traffic
	// (within the grid's PricingBounds; nil: the grid's).
	Pricing *Pricing `json:"pricing,omitempty"`
}

// Resources is capacity in the units of the grid: CRU in logical cores, the
// others in bytes.
type Resources struct {
	CRU uint64 `json:"cru"`
	MRU uint64 `json:"mru"`
	SRU uint64 `json:"sru"`
	HRU uint64 `json:"hru"`
}

// MaxResource bounds each value of the Resources the registry keeps (a
// node's total, reserved and used capacity, a contract's use): 2^53, 8 PiB
// or as many cores. Values stay exact for readers that decode JSON numbers
// as doubles, and sums of a node's contracts cannot wrap around 2^64.
const MaxResource = 1 << 53

// check refuses a value above MaxResource; what names the resources.
func (r Resources) check(what string) error {
	for _, v := range [...]struct {
		name string
		n    uint64
	}{{"cru", r.CRU}, {"mru", r.MRU}, {"sru", r.SRU}, {"hru", r.HRU}} {
		if v.n > MaxResource {
			return fmt.Errorf("%w: %s %s %d is above the limit %d", ErrInvalid, what, v.name, v.n, uint64(MaxResource))
		}
	}
	return nil
}

// Plus returns r+o, each sum saturating at the largest uint64 instead of
// wrapping around (totals over many nodes).
func (r Resources) Plus(o Resources) Resources {
	add := func(a, b uint64) uint64 {
		if s, carry := bits.Add64(a, b, 0); carry == 0 {
			return s
		}
		return math.MaxUint64
	}
	return Resources{CRU: add(r.CRU, o.CRU), MRU: add(r.MRU, o.MRU), SRU: add(r.SRU, o.SRU), HRU: add(r.HRU, o.HRU)}
}

// Location is where a node stands.
type Location struct {
	Country   string  `json:"country,omitempty"`
	City      string  `json:"city,omitempty"`
	Latitude  float64 `json:"latitude,omitempty"`
	Longitude float64 `json:"longitude,omitempty"`
}

// Interface is a network interface of a node.
type Interface struct {
	Name string   `json:"name"`
	MAC  string   `json:"mac"`
	IPs  []string `json:"ips"`
}

// PublicConfig is a node's public network configuration, set by the farmer.
type PublicConfig struct {
	IPv4   string `json:"ipv4,omitempty"` // cidr
	GW4    string `json:"gw4,omitempty"`
	IPv6   string `json:"ipv6,omitempty"` // cidr
	GW6    string `json:"gw6,omitempty"`
	Domain string `json:"domain,omitempty"`
}

// Power states of a node.
const (
	PowerUp   = "up"
	PowerDown = "down"
)

// Node is a registered node.
type Node struct {
	ID     uint32 `json:"id"`
	FarmID uint32 `json:"farm_id"`
	TwinID uint32 `json:"twin_id"`
	// Total is the node's capacity; Used is what its contracts use, as the
	// node reports it; Reserved is what the system keeps (cache, memory
	// reserve), as reported.
	Total    Resources `json:"total_resources"`
	Used     Resources `json:"used_resources"`
	Reserved Resources `json:"reserved_resources"`
	Location Location  `json:"location"`
	// LocationByFarmer is set when the farmer set Location (OpNodeLocation):
	// the node's registrations then leave it.
	LocationByFarmer bool          `json:"location_by_farmer,omitempty"`
	Interfaces       []Interface   `json:"interfaces,omitempty"`
	PublicConfig     *PublicConfig `json:"public_config,omitempty"`
	Virtualized      bool          `json:"virtualized"`
	// Features are what the node provisions, as it reported them.
	Features []string `json:"features,omitempty"`
	// Firmware is the node's BIOS and board, as its DMI says.
	Firmware *Firmware `json:"firmware,omitempty"`
	// Created is when the node first registered.
	Created time.Time `json:"created"`
	// Updated is when the node last reported uptime; Uptime is the uptime
	// it reported then, in seconds.
	Updated time.Time `json:"updated"`
	Uptime  uint64    `json:"uptime"`
	// Power is the node's power state (PowerUp or PowerDown; empty = up)
	// and PowerTarget what the farmer asked for.
	Power       string `json:"power,omitempty"`
	PowerTarget string `json:"power_target,omitempty"`
	// PowerRefused is why the node refused the last standby target (it
	// has workloads or is updating); empty once it complied.
	PowerRefused string `json:"power_refused,omitempty"`
	// Version is the zos version the node runs.
	Version string `json:"version,omitempty"`
	// UpdateFailed are releases the node rolled back from, newest last.
	UpdateFailed []string `json:"update_failed,omitempty"`
}

// Contract states.
const (
	StateCreated  = "created"
	StateCanceled = "canceled"
)

// Contract types.
const (
	TypeNode = "node"
	TypeName = "name"
	TypeRent = "rent"
)

// Contract is a node, name or rent contract; the fields that do not belong
// to its type are empty.
type Contract struct {
	ID     uint64 `json:"contract_id"`
	Type   string `json:"type"`
	TwinID uint32 `json:"twin_id"`
	State  string `json:"state"`
	// Node and rent contracts.
	NodeID uint32 `json:"node_id,omitempty"`
	// Node contracts: the hex MD5 challenge hash of the deployment, its
	// metadata, how many public IPs it asked for and the ones reserved.
	DeploymentHash string     `json:"deployment_hash,omitempty"`
	Metadata       string     `json:"deployment_data,omitempty"`
	PublicIPsCount uint32     `json:"public_ips_count,omitempty"`
	PublicIPs      []PublicIP `json:"public_ips,omitempty"`
	// FarmID is the farm the public IPs were reserved in, where they go
	// back when the contract ends (the node may have moved since).
	FarmID uint32 `json:"farm_id,omitempty"`
	// Used is what the node reported the contract uses.
	Used Resources `json:"used_resources"`
	// BillingState is the contract's billing state (billing.StateGrace,
	// billing.StateActive after a grace period, billing.StateOutOfFunds
	// once deleted for it; empty while never in grace). State stays
	// StateCreated in grace: the node keeps the workloads, paused.
	BillingState string `json:"billing_state,omitempty"`
	// Name contracts.
	Name    string    `json:"name,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
	// Proof is the twin's signed request behind the contract's last
	// change (create, update or cancel); VerifyContract checks it.
	Proof *Proof `json:"proof,omitempty"`
}

// Event kinds published on a node's subject.
const (
	EventContractCreated     = "contract_created"
	EventContractUpdated     = "contract_updated"
	EventContractCanceled    = "contract_canceled"
	EventPublicConfigChanged = "public_config_changed"
	EventPowerTargetChanged  = "power_target_changed"
	// EventWake asks an awake node to send a Wake-on-LAN packet for
	// another node of its farm (Event.Wake).
	EventWake = "wake"
	// EventContractState carries the grid's signed billing state change of
	// one of the node's contracts (grace period, resumed, out of funds).
	EventContractState = "contract_state"
	// EventResync is sent by WatchNode (never stored) when events after
	// the asked sequence have aged out of the stream: re-read the node's
	// contracts.
	EventResync = "resync"
)

// Event is one change that concerns a node. Seq is the position in the
// events stream, so a node that was down resumes from its last Seq.
type Event struct {
	Seq      uint64    `json:"seq"`
	Kind     string    `json:"kind"`
	NodeID   uint32    `json:"node_id"`
	Contract *Contract `json:"contract,omitempty"`
	// State is set on EventContractState; the node verifies it against
	// the grid's billing key.
	State *billing.StateChange `json:"state_change,omitempty"`
	// Wake is set on EventWake.
	Wake *Wake     `json:"wake,omitempty"`
	Time time.Time `json:"time"`
}
