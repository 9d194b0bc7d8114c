package network

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

// TestPlanetaryIP: the address is the node's /64 with the EUI-64 of the
// tap's MAC, the same for the same workload and different for another;
// a subnet that is not a /64 of 300::/8 is refused.
func TestPlanetaryIP(t *testing.T) {
	subnet := netip.MustParsePrefix("300:1234:5678:9abc::/64")
	tap := PlanetaryTap(gridtypes.WorkloadID("7-1-vm"))
	if !IsTenantLink(tap) || len(tap) > 15 {
		t.Fatalf("tap %q: want a tenant link name of at most 15 characters", tap)
	}
	ip, err := PlanetaryIP(subnet, tap)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := DeriveIPv6(subnet, PublicMAC(tap))
	if ip != want || !subnet.Contains(ip) {
		t.Errorf("got %s, want %s in %s", ip, want, subnet)
	}
	again, _ := PlanetaryIP(subnet, PlanetaryTap(gridtypes.WorkloadID("7-1-vm")))
	other, _ := PlanetaryIP(subnet, PlanetaryTap(gridtypes.WorkloadID("7-1-vm2")))
	if again != ip || other == ip {
		t.Errorf("got %s again and %s for another workload, want %s and a different one", again, other, ip)
	}
	for _, bad := range []string{"300:1234:5678:9abc::/48", "200:1234:5678:9abc::/64", "2001:db8::/64", "10.0.0.0/24"} {
		if _, err := PlanetaryIP(netip.MustParsePrefix(bad), tap); err == nil {
			t.Errorf("subnet %s: got no error", bad)
		}
	}
}

// TestAttachPlanetaryLines: the filter is loaded before the tap exists,
// then IPv6 on the tap (no DAD), the node's fe80::1 and a /128 route;
// detaching removes the tap and the filter, twice without error. Bad
// names, non-overlay addresses and a node without a namespace of its own
// are refused before anything is done.
func TestAttachPlanetaryLines(t *testing.T) {
	m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: true})
	ip := netip.MustParseAddr("300:1234:5678:9abc:0:ff:feab:cdef")
	if err := m.AttachPlanetary("y-vm", ip); err != nil {
		t.Fatal(err)
	}
	if got, want := f.nft["[node] inet zos-y-vm"], PlanetaryRuleset("y-vm", ip); got != want {
		t.Errorf("filter: got\n%s\nwant\n%s", got, want)
	}
	for range 2 {
		if err := m.DetachPlanetary("y-vm"); err != nil {
			t.Fatal(err)
		}
	}
	wantLines(t, "attach", f.take(), []string{
		"[node] nft load inet zos-y-vm",
		"[node] tap y-vm master=",
		"[node] sysctl net/ipv6/conf/all/forwarding=1",
		"[node] sysctl net/ipv6/conf/y-vm/accept_dad=0",
		"[node] sysctl net/ipv6/conf/y-vm/disable_ipv6=0",
		"[node] addr y-vm fe80::1/64",
		"[node] route " + ip.String() + "/128 dev y-vm",
		"[node] del y-vm",
		"[node] nft drop inet zos-y-vm",
		"[node] del y-vm",
		"[node] nft drop inet zos-y-vm",
	})
	for _, tt := range []struct {
		name, tap, ip, want string
	}{
		{"public tap name", "p-vm", ip.String(), "must be named y-"},
		{"bare prefix", "y-", ip.String(), "must be named y-"},
		{"public IPv6", "y-vm", "2001:db8::1", "not a planetary"},
		{"IPv4", "y-vm", "10.1.2.3", "not a planetary"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := m.AttachPlanetary(tt.tap, netip.MustParseAddr(tt.ip))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	if lines := f.take(); len(lines) != 0 {
		t.Errorf("refused attachments did %v, want nothing", lines)
	}
	hosted, _ := newFakeManager(t, Config{NodeNS: "", Uplink: false})
	if err := hosted.AttachPlanetary("y-vm", ip); err == nil {
		t.Error("a node in the host's namespace attached a planetary tap")
	}
}
