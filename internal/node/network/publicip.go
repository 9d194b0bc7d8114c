package network

import (
	"context"
	"crypto/md5"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/nft"
)

// Contracts reads node contracts (for the public IPs reserved on them).
type Contracts interface {
	Contract(ctx context.Context, id uint64) (registry.Contract, error)
}

// PublicIPManager provisions `ip` workloads: one of the farm IPs the
// registry reserved on the deployment's contract, and an anti-spoofing
// filter on the public tap the VM will use (it may send only from that
// address; the zmachine manager makes the tap, Manager.AttachPublic).
type PublicIPManager struct {
	nodeNS    string
	fw        Firewall
	contracts Contracts
	log       *slog.Logger
}

var _ provision.Manager = (*PublicIPManager)(nil)

// NewPublicIPManager returns the manager; filters go into namespace nodeNS
// through fw.
func NewPublicIPManager(nodeNS string, fw Firewall, contracts Contracts, log *slog.Logger) *PublicIPManager {
	return &PublicIPManager{nodeNS: nodeNS, fw: fw, contracts: contracts, log: log}
}

// PublicTap is the name of a workload's public tap (as the original:
// "p-" + Unique("pub")), and PublicMAC its MAC address, derived from it.
func PublicTap(wl gridtypes.WorkloadID) string { return "p-" + wl.Unique("pub") }

// PublicMAC is a locally administered MAC derived from the tap name.
func PublicMAC(tap string) net.HardwareAddr {
	h := md5.Sum([]byte(tap))
	return net.HardwareAddr{0x02, h[0], h[1], h[2], h[3], h[4]}
}

func filterTable(tap string) string { return "zos-" + tap }

// PublicIPRuleset is the anti-spoofing filter of a public tap (a routed
// link in the node namespace): what comes from it must carry its address;
// no IPv6 yet.
func PublicIPRuleset(tap string, ip netip.Addr) string {
	t := filterTable(tap)
	return fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname "%[2]s" ip saddr != %[3]s drop
		iifname "%[2]s" meta nfproto ipv6 drop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname "%[2]s" ip saddr != %[3]s drop
		iifname "%[2]s" meta nfproto ipv6 drop
	}
}
`, t, tap, ip)
}

// PickPublicIP chooses, among the IPs reserved on contract c, the one of
// the workload's previous result if it has one, else the first not used
// by another ip workload of the deployment.
func PickPublicIP(c registry.Contract, d *gridtypes.Deployment, name string) (registry.PublicIP, error) {
	used := map[string]bool{}
	var prev string
	for i := range d.Workloads {
		wl := &d.Workloads[i]
		if !wl.Type.IsAny(gridtypes.PublicIPType, gridtypes.PublicIPv4Type) {
			continue
		}
		var r gridtypes.PublicIPResult
		if len(wl.Result.Data) == 0 || wl.Result.Unmarshal(&r) != nil || r.IP.IsZero() {
			continue
		}
		if wl.Name == name {
			prev = r.IP.String()
		} else if wl.Result.State.IsOkay() {
			used[r.IP.String()] = true
		}
	}
	for _, ip := range c.PublicIPs {
		if ip.IP == prev && prev != "" {
			return ip, nil
		}
	}
	for _, ip := range c.PublicIPs {
		if !used[ip.IP] {
			return ip, nil
		}
	}
	return registry.PublicIP{}, fmt.Errorf("contract %d has no free public IP left (%d reserved)", c.ID, len(c.PublicIPs))
}

// Provision takes a public IP of the contract and installs the filter.
func (m *PublicIPManager) Provision(ctx context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.PublicIP](wl)
	if err != nil {
		return nil, err
	}
	if data.V6 {
		return nil, fmt.Errorf("public IPv6 is not supported on this node yet")
	}
	if !data.V4 {
		return nil, fmt.Errorf("ip: one of v4 or v6 is required")
	}
	c, err := m.contracts.Contract(ctx, wl.Deployment.ContractID)
	if err != nil {
		return nil, fmt.Errorf("reading contract %d: %w", wl.Deployment.ContractID, err)
	}
	pick, err := PickPublicIP(c, wl.Deployment, wl.Name)
	if err != nil {
		return nil, err
	}
	cidr, err := gridtypes.ParseIPNet(pick.IP)
	if err != nil {
		return nil, fmt.Errorf("farm IP %q: %w", pick.IP, err)
	}
	addr, err := netip.ParsePrefix(pick.IP)
	if err != nil {
		return nil, fmt.Errorf("farm IP %q: %w", pick.IP, err)
	}
	tap := PublicTap(wl.ID)
	if err := m.fw.Apply(m.nodeNS, PublicIPRuleset(tap, addr.Addr())); err != nil {
		return nil, fmt.Errorf("installing the anti-spoofing filter of %s: %w", tap, err)
	}
	m.log.Info("public_ip_taken", "workload", wl.ID, "ip", pick.IP, "tap", tap)
	return gridtypes.PublicIPResult{IP: cidr, Gateway: pick.Gateway}, nil
}

// Deprovision removes the filter.
func (m *PublicIPManager) Deprovision(ctx context.Context, wl *provision.Workload) error {
	return m.fw.Apply(m.nodeNS, nft.Drop("inet", filterTable(PublicTap(wl.ID))))
}
