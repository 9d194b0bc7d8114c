package node

import (
	"slices"
	"strings"
	"unicode"

	"github.com/zos-go/zos/internal/node/facts"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
)

// DMI implements api.Facts: the machine's DMI facts, read on each call
// (a file read; the table does not change while the node runs).
func (n *Node) DMI() (nodeapi.DMI, error) { return facts.Reader{Root: n.cfg.FactsRoot}.DMI() }

// firmware is the BIOS and board of the machine's DMI for the registry
// (nil without DMI).
func (n *Node) firmware() *registry.Firmware {
	d, err := n.DMI()
	if err != nil {
		return nil
	}
	var f registry.Firmware
	for _, s := range d.Sections {
		if len(s.SubSections) == 0 {
			continue
		}
		p := s.SubSections[0].Properties
		switch s.Type {
		case 0:
			f.BIOSVendor, f.BIOSVersion = clip(p["Vendor"].Val), clip(p["Version"].Val)
		case 2:
			f.BoardManufacturer, f.BoardProduct = clip(p["Manufacturer"].Val), clip(p["Product Name"].Val)
		}
	}
	if f == (registry.Firmware{}) {
		return nil
	}
	return &f
}

// clip bounds a firmware string as the registry does (128 bytes, no
// control characters).
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 128 {
		s = strings.ToValidUTF8(s[:128], "")
	}
	return s
}

// Hypervisor implements api.Facts: the hypervisor found at start-up, ""
// on bare metal.
func (n *Node) Hypervisor() string { return n.hyper.Name }

// Features implements api.Facts: the workload types the node provisions
// (one per registered manager), then its network capabilities, as the
// original's node_features_get.
func (n *Node) Features() []string {
	var out []string
	if n.engine != nil {
		for _, t := range n.engine.Types() {
			out = append(out, string(t))
		}
	}
	out = append(out, "wireguard")
	if len(n.cfg.PlanetaryPeers) > 0 {
		out = append(out, "yggdrasil")
	}
	return slices.Clip(out)
}
