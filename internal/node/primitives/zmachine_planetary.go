package primitives

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/qemu"
)

// Planetary is what the zmachine manager needs for VMs on the planetary
// overlay (yggdrasil): the node's overlay /64 and the VM's routed tap
// (network.Manager.AttachPlanetary).
type Planetary interface {
	// Subnet is the node's overlay /64 (from its key: known while the
	// overlay restarts).
	Subnet() (netip.Prefix, error)
	AttachPlanetary(tap string, ip netip.Addr) error
	DetachPlanetary(tap string) error
}

// errNoPlanetary refuses `planetary: true` on a node without the overlay.
var errNoPlanetary = errors.New("network.planetary: this node runs no planetary overlay (no planetary peers configured)")

// planetaryLink is a VM's interface on the overlay: its address in the
// node's /64, routed to tap.
type planetaryLink struct {
	tap string
	ip  netip.Addr
}

// planetary makes the planetary tap of a VM asking for one, or returns
// nil. The address is derived from the node's /64 and the workload
// (network.PlanetaryIP): the same on every provisioning.
func (m *ZMachineManager) planetary(id gridtypes.WorkloadID, data *gridtypes.ZMachine) (*planetaryLink, error) {
	if !data.Network.Planetary {
		return nil, nil
	}
	if m.Planetary == nil {
		return nil, errNoPlanetary
	}
	subnet, err := m.Planetary.Subnet()
	if err != nil {
		return nil, fmt.Errorf("network.planetary: %w", err)
	}
	link := &planetaryLink{tap: network.PlanetaryTap(id)}
	if link.ip, err = network.PlanetaryIP(subnet, link.tap); err != nil {
		return nil, fmt.Errorf("network.planetary: %w", err)
	}
	if err := m.Planetary.AttachPlanetary(link.tap, link.ip); err != nil {
		m.detachPlanetary(id, data)
		return nil, fmt.Errorf("network.planetary: %w", err)
	}
	return link, nil
}

// detachPlanetary removes the planetary tap of a VM that asked for one.
func (m *ZMachineManager) detachPlanetary(id gridtypes.WorkloadID, data *gridtypes.ZMachine) error {
	if !data.Network.Planetary || m.Planetary == nil {
		return nil
	}
	return m.Planetary.DetachPlanetary(network.PlanetaryTap(id))
}

// nic is the VM's device on the tap.
func (p *planetaryLink) nic() qemu.NIC {
	return qemu.NIC{ID: "n2", Tap: p.tap, MAC: network.PublicMAC(p.tap).String()}
}

// guest is the VM's side of the link for vminit (name: its place among
// the interfaces; vminit finds it by MAC): the address as a /128, the
// overlay via the node's fe80::1.
func (p *planetaryLink) guest(name string) guest.Interface {
	return guest.Interface{Name: name, MAC: network.PublicMAC(p.tap).String(), Address6: netip.PrefixFrom(p.ip, 128).String(),
		Routes6: []guest.Route{{Dst: network.Overlay.String(), Via: network.RouterLinkLocal.String()}}}
}
