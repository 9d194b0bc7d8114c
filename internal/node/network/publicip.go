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
// registry reserved on the deployment's contract (v4), an IPv6 derived
// from the node's public /64 (v6), and an anti-spoofing
// filter on the public tap the VM will use (it may send only from that
// address; the zmachine manager makes the tap, Manager.AttachPublic).
type PublicIPManager struct {
	nodeNS    string
	fw        Firewall
	contracts Contracts
	v6        Prefixes
	log       *slog.Logger
}

// Prefixes gives the node's public IPv6 /64 (Manager.Prefix6).
type Prefixes interface {
	Prefix6() (netip.Prefix, error)
}

var _ provision.Manager = (*PublicIPManager)(nil)

// PublicIPConfig configures a PublicIPManager.
type PublicIPConfig struct {
	NodeNS string // the node's namespace, where the filters go
}

// NewPublicIPManager returns the manager; filters go into cfg.NodeNS
// through fw; v6 (nil: none) gives the prefix of public IPv6 addresses.
func NewPublicIPManager(cfg PublicIPConfig, fw Firewall, contracts Contracts, v6 Prefixes, log *slog.Logger) *PublicIPManager {
	return &PublicIPManager{nodeNS: cfg.NodeNS, fw: fw, contracts: contracts, v6: v6, log: log}
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
// link in the node namespace): what comes from it must carry its address,
// ip4 and ip6 (either may be invalid: no such address, nothing of that
// family passes); to the node, link-local sources and, for duplicate
// address detection, "::" are allowed for neighbour discovery (the input
// filter lets nothing else of IPv6 in); router advertisements and
// redirects from the VM are dropped.
func PublicIPRuleset(tap string, ip4, ip6 netip.Addr) string {
	v4 := fmt.Sprintf(`iifname "%s" meta nfproto ipv4 drop`, tap)
	if ip4.IsValid() {
		v4 = fmt.Sprintf(`iifname "%s" ip saddr != %s drop`, tap, ip4)
	}
	fwd6 := fmt.Sprintf(`iifname "%s" meta nfproto ipv6 drop`, tap)
	in6 := fwd6
	if ip6.IsValid() {
		fwd6 = fmt.Sprintf(`iifname "%s" ip6 saddr != %s drop`, tap, ip6)
		in6 = fmt.Sprintf(`iifname "%[1]s" icmpv6 type { nd-router-advert, nd-redirect } drop
		iifname "%[1]s" ip6 saddr != { %[2]s, fe80::/10, :: } drop`, tap, ip6)
	}
	t := filterTable(tap)
	return fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain forward {
		type filter hook forward priority filter; policy accept;
		%[2]s
		%[3]s
	}
	chain input {
		type filter hook input priority filter; policy accept;
		%[2]s
		%[4]s
	}
}
`, t, v4, fwd6, in6)
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

// Provision takes a public IPv4 of the contract (v4) and derives the
// public IPv6 (v6, from the node's /64, DeriveIPv6), then installs the
// filter.
func (m *PublicIPManager) Provision(ctx context.Context, wl *provision.Workload) (any, error) {
	data, err := provision.Data[*gridtypes.PublicIP](wl)
	if err != nil {
		return nil, err
	}
	if !data.V4 && !data.V6 {
		return nil, fmt.Errorf("ip: one of v4 or v6 is required")
	}
	tap := PublicTap(wl.ID)
	var res gridtypes.PublicIPResult
	var ip4, ip6 netip.Addr
	if data.V6 {
		if m.v6 == nil {
			return nil, fmt.Errorf("ip: v6: %w", ErrNoIPv6)
		}
		prefix, err := m.v6.Prefix6()
		if err != nil {
			return nil, fmt.Errorf("ip: v6: %w", err)
		}
		if ip6, err = DeriveIPv6(prefix, PublicMAC(tap)); err != nil {
			return nil, err
		}
		if res.IPv6, err = gridtypes.ParseIPNet(netip.PrefixFrom(ip6, 64).String()); err != nil {
			return nil, err
		}
	}
	if data.V4 {
		c, err := m.contracts.Contract(ctx, wl.Deployment.ContractID)
		if err != nil {
			return nil, fmt.Errorf("reading contract %d: %w", wl.Deployment.ContractID, err)
		}
		pick, err := PickPublicIP(c, wl.Deployment, wl.Name)
		if err != nil {
			return nil, err
		}
		if res.IP, err = gridtypes.ParseIPNet(pick.IP); err != nil {
			return nil, fmt.Errorf("farm IP %q: %w", pick.IP, err)
		}
		addr, err := netip.ParsePrefix(pick.IP)
		if err != nil {
			return nil, fmt.Errorf("farm IP %q: %w", pick.IP, err)
		}
		ip4, res.Gateway = addr.Addr(), pick.Gateway
	}
	if err := m.fw.Apply(m.nodeNS, PublicIPRuleset(tap, ip4, ip6)); err != nil {
		return nil, fmt.Errorf("installing the anti-spoofing filter of %s: %w", tap, err)
	}
	m.log.Info("public_ip_taken", "workload", wl.ID, "ip", ip4, "ip6", ip6, "tap", tap)
	return res, nil
}

// Deprovision removes the filter.
func (m *PublicIPManager) Deprovision(ctx context.Context, wl *provision.Workload) error {
	return m.fw.Apply(m.nodeNS, nft.Drop("inet", filterTable(PublicTap(wl.ID))))
}
