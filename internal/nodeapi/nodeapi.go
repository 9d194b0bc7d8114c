// Package nodeapi holds the wire types of the node's API over the relay
// (the zos.* commands): what a client sends and what the node answers. It
// depends on nothing of the node, so that zosctl and other clients speak to
// nodes without linking them; the node's server side (internal/node/api)
// converts its own types into these.
package nodeapi

import "github.com/zos-go/zos/internal/gridtypes"

// The commands of the node API.
const (
	CmdDeploy       = "zos.deployment.deploy"
	CmdUpdate       = "zos.deployment.update"
	CmdGet          = "zos.deployment.get"
	CmdWait         = "zos.deployment.wait" // WaitRequest: the deployment once settled, or at the wait's end
	CmdList         = "zos.deployment.list"
	CmdChanges      = "zos.deployment.changes"
	CmdDelete       = "zos.deployment.delete"
	CmdStatistics   = "zos.statistics.get"
	CmdPools        = "zos.storage.pools"
	CmdVersion      = "zos.system.version"
	CmdDiagnostics  = "zos.system.diagnostics"
	CmdWGPorts      = "zos.network.list_wg_ports"
	CmdPublicConfig = "zos.network.public_config_get"
	CmdInterfaces   = "zos.network.interfaces"
	CmdHasIPv6      = "zos.network.has_ipv6" // answers a bool: the node has a public IPv6 /64
	CmdPrivateIPs   = "zos.network.list_private_ips"
	CmdPublicIPs    = "zos.network.list_public_ips"
	CmdZMachineLogs = "zos.zmachine.logs"
)

// ContractRequest names a contract (zos.deployment.get and .changes).
type ContractRequest struct {
	ContractID uint64 `json:"contract_id"`
}

// WaitRequest asks zos.deployment.wait for a deployment once every workload
// of version Version or later left init (ok, error, ...), waiting at most
// WaitMS milliseconds (the node bounds it further); the answer is the
// deployment as zos.deployment.get gives it, settled or not.
type WaitRequest struct {
	ContractID uint64 `json:"contract_id"`
	Version    uint32 `json:"version"`
	WaitMS     int64  `json:"wait_ms"`
}

// Statistics is the answer to zos.statistics.get.
type Statistics struct {
	Total  gridtypes.Capacity `json:"total"`
	Used   gridtypes.Capacity `json:"used"`
	System gridtypes.Capacity `json:"system"`
	Users  UsersCounters      `json:"users"`
}

// UsersCounters counts what users run.
type UsersCounters struct {
	Deployments             int   `json:"deployments"`
	Workloads               int   `json:"workloads"`
	LastDeploymentTimestamp int64 `json:"last_deployment_timestamp"`
}

// Pool is one storage pool of the node, an element of the answer to
// zos.storage.pools.
type Pool struct {
	Name   string `json:"name"`
	Type   string `json:"type"` // "ssd" or "hdd"
	Size   uint64 `json:"size"`
	Used   uint64 `json:"used"`             // allocated: volume limits, vdisk sizes, zdb devices, cache quota
	Broken string `json:"broken,omitempty"` // why the pool cannot be used, empty when healthy
}

// Version is the answer to zos.system.version.
type Version struct {
	ZOS   string `json:"zos"`
	ZInit string `json:"zinit"`
}

// Diagnostics is the answer to zos.system.diagnostics: the health of the
// node's modules.
type Diagnostics struct {
	SystemStatusOk bool              `json:"system_status_ok"`
	Modules        map[string]string `json:"modules"` // module -> "ok" or the error
	Healthy        bool              `json:"healthy"`
	LimitedCache   bool              `json:"limited_cache"`
}

// PublicConfig is the answer to zos.network.public_config_get, as the
// original: {type, ipv4, ipv6, gw4, gw6, domain}.
type PublicConfig struct {
	Type   string `json:"type"`
	IPv4   string `json:"ipv4"`
	IPv6   string `json:"ipv6"`
	GW4    string `json:"gw4"`
	GW6    string `json:"gw6"`
	Domain string `json:"domain"`
}

// PrivateIPsRequest names a network of the sender
// (zos.network.list_private_ips).
type PrivateIPsRequest struct {
	NetworkName string `json:"network_name"`
}

// LogsRequest is the payload of zos.zmachine.logs: a chunk of the console
// log of machine Name of deployment ContractID, from Offset (-1: the last
// Max bytes), at most Max bytes (bounded to 1 MiB; 0 means 64 KiB).
type LogsRequest struct {
	ContractID uint64 `json:"contract_id"`
	Name       string `json:"name"`
	Offset     int64  `json:"offset"`
	Max        int    `json:"max"`
}

// LogsResponse is the answer to zos.zmachine.logs. Next is the offset to
// ask next; Rotated means the log was rotated since Offset and Data starts
// again at its beginning.
type LogsResponse struct {
	Data    []byte `json:"data"`
	Next    int64  `json:"next"`
	Size    int64  `json:"size"`
	Rotated bool   `json:"rotated"`
}

// The node facts commands, as the original's: zos.system.dmi answers a DMI,
// zos.system.hypervisor the hypervisor's name ("" on bare metal),
// zos.system.node_features_get the features (workload types and network
// capabilities) the node provisions.
const (
	CmdDMI          = "zos.system.dmi"
	CmdHypervisor   = "zos.system.hypervisor"
	CmdNodeFeatures = "zos.system.node_features_get"
)

// DMI is the answer to zos.system.dmi, in the original's shape
// (zosbase pkg/capacity/dmi): the tool that read the facts and the SMBIOS
// structures as sections of titled properties.
type DMI struct {
	Tooling  DMITooling   `json:"tooling"`
	Sections []DMISection `json:"sections"`
}

// DMITooling says where the DMI facts come from and what decoded them.
type DMITooling struct {
	Aggregator string `json:"aggregator"`
	Decoder    string `json:"decoder"`
}

// DMISection is one SMBIOS structure: its handle line as dmidecode prints
// it ("Handle 0x0100, DMI type 1, 27 bytes"), its type name and number.
type DMISection struct {
	HandleLine  string          `json:"handleline"`
	TypeStr     string          `json:"typestr,omitempty"`
	Type        int             `json:"typenum"`
	SubSections []DMISubSection `json:"subsections"`
}

// DMISubSection is a titled group of properties ("System Information").
type DMISubSection struct {
	Title      string                 `json:"title"`
	Properties map[string]DMIProperty `json:"properties,omitempty"`
}

// DMIProperty is a value with an optional list of items.
type DMIProperty struct {
	Val   string   `json:"value"`
	Items []string `json:"items,omitempty"`
}
