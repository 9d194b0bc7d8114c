package power

import (
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// NIC is a physical network interface: what a farm peer wakes the node by.
type NIC struct {
	Name string
	MAC  string
}

// PhysicalNICs lists the interfaces under sysClassNet (/sys/class/net)
// backed by a device (not bridges, veths, tunnels or loopback) with a
// unicast 6-byte MAC, by name. The node registers them: their MACs are
// what Wake-on-LAN needs.
func PhysicalNICs(sysClassNet string) []NIC {
	ents, err := os.ReadDir(sysClassNet)
	if err != nil {
		return nil
	}
	var out []NIC
	for _, e := range ents {
		dir := filepath.Join(sysClassNet, e.Name())
		if _, err := os.Stat(filepath.Join(dir, "device")); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "address"))
		if err != nil {
			continue
		}
		mac := strings.TrimSpace(string(b))
		if hw, err := net.ParseMAC(mac); err != nil || len(hw) != 6 {
			continue
		}
		if _, err := MagicPacket(mac); err != nil {
			continue
		}
		out = append(out, NIC{Name: e.Name(), MAC: mac})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
