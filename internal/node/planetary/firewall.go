package planetary

import (
	"fmt"
	"strconv"
	"strings"
)

// Table is the nftables table (family inet) filtering what comes in from
// the overlay to the node.
const Table = "zos-planetary"

// Firewall loads an nftables ruleset in a namespace ("" = the process's).
type Firewall interface {
	Apply(ns, ruleset string) error
}

// Ruleset is the filter of what arrives on the overlay's TUN for the node
// itself: anyone on the overlay may reach the node, so only answers to the
// node's own connections, ICMPv6 errors and echo, and new TCP connections
// to ports (the services meant for tenants, as on the uplink) pass.
func Ruleset(tun string, ports []uint16) string {
	allow := ""
	if len(ports) > 0 {
		ps := make([]string, len(ports))
		for i, p := range ports {
			ps[i] = strconv.Itoa(int(p))
		}
		allow = "\n\t\ttcp dport { " + strings.Join(ps, ", ") + " } accept"
	}
	return fmt.Sprintf(`table inet %[1]s
delete table inet %[1]s
table inet %[1]s {
	chain input {
		type filter hook input priority filter; policy accept;
		iifname %[2]q jump overlay
	}
	# from the overlay: answers, ICMPv6 errors and echo, tenant services
	chain overlay {
		ct state established,related accept
		icmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, parameter-problem } accept%[3]s
		drop
	}
}
`, Table, tun, allow)
}

// DropRuleset removes Table whether it exists or not.
func DropRuleset() string {
	return fmt.Sprintf("table inet %[1]s\ndelete table inet %[1]s\n", Table)
}
