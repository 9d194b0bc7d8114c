package network

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/testutil"
)

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	testutil.Golden(t, filepath.Join("testdata", name), []byte(got))
}

// TestRulesets: the node's firewalls, whole (goldens).
func TestRulesets(t *testing.T) {
	golden(t, "node.nft", NodeRuleset(netip.MustParseAddr("192.0.2.1")))
	golden(t, "node-no-router.nft", NodeRuleset(netip.Addr{}))
	golden(t, "input.nft", InputRuleset("zos-in", []uint16{443, 9900}))
	golden(t, "input-no-ports.nft", InputRuleset("zos-in-0a1b2c3d", nil))
	golden(t, "resource.nft", ResourceRuleset(false))
	golden(t, "resource-public.nft", ResourceRuleset(true))
	golden(t, "publicip.nft", PublicIPRuleset("p-tap", netip.MustParseAddr("203.0.113.10"), netip.Addr{}))
	golden(t, "publicip-dual.nft", PublicIPRuleset("p-tap", netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8:1:0:ff:feab:cdef:1")))
	golden(t, "publicip-v6.nft", PublicIPRuleset("p-tap", netip.Addr{}, netip.MustParseAddr("2001:db8:1:0:ff:feab:cdef:1")))
	golden(t, "planetary.nft", PlanetaryRuleset("y-tap", netip.MustParseAddr("300:1234:5678:9abc:0:ff:feab:cdef")))
}

func TestIsTenantLink(t *testing.T) {
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"b-75Ei7YpXX7mqy", true}, {"l-abc", true}, {"u-abc", true}, {"t-abc", true}, {"p-abc", true}, {"y-abc", true},
		{"t-", false}, {"eth0", false}, {"br-1234", false}, {"tap0", false}, {"", false},
	} {
		if got := IsTenantLink(tt.name); got != tt.want {
			t.Errorf("IsTenantLink(%q): got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNamesOf(t *testing.T) {
	n := NamesOf("", "75Ei7YpXX7mqy")
	if n.NS != "n-75Ei7YpXX7mqy" || n.WG != "w-75Ei7YpXX7mqy" || n.Bridge != "b-75Ei7YpXX7mqy" {
		t.Errorf("no prefix: got %+v, want the original's names", n)
	}
	a, b := NamesOf("node1-", "75Ei7YpXX7mqy"), NamesOf("node2-", "75Ei7YpXX7mqy")
	if a.NS != "node1-n-75Ei7YpXX7mqy" || a.WG == b.WG || a.Bridge == b.Bridge {
		t.Errorf("prefixed names collide or lack the prefix: %+v %+v", a, b)
	}
	for _, s := range []string{a.Bridge, a.BridgeVeth, a.NRVeth, a.WG, a.PublicVeth} {
		if len(s) > 15 {
			t.Errorf("link name %q is longer than 15", s)
		}
	}
}

func testNet(t *testing.T, peers ...gridtypes.Peer) gridtypes.Network {
	k := newKey(t)
	return gridtypes.Network{NetworkIPRange: ipnet("10.20.0.0/16"), Subnet: ipnet("10.20.2.0/24"), WGPrivateKey: k.priv, WGListenPort: 3000, Peers: peers}
}

func TestPlan(t *testing.T) {
	other := newKey(t)
	peer := gridtypes.Peer{Subnet: ipnet("10.20.3.0/24"), WGPublicKey: other.pub, Endpoint: "10.99.0.12:3001",
		AllowedIPs: []gridtypes.IPNet{ipnet("10.20.3.0/24"), ipnet("100.64.20.3/32"), ipnet("192.168.7.0/24")}}
	n := testNet(t, peer)
	r, err := Plan("p-", "NET", &n, netip.MustParseAddr("100.127.4.5"))
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, rt := range r.Routes {
		routes = append(routes, rt.String())
	}
	want := []string{
		"10.20.0.0/16 dev " + r.Names.WG,
		"192.168.7.0/24 dev " + r.Names.WG,
		"100.127.0.1/32 dev public",
		"0.0.0.0/0 dev public via 100.127.0.1",
	}
	if strings.Join(routes, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes: got\n%s\nwant\n%s", strings.Join(routes, "\n"), strings.Join(want, "\n"))
	}
	if r.Gateway.String() != "10.20.2.1/24" || r.WGAddr.String() != "100.64.20.2/16" {
		t.Errorf("addresses: got %s %s, want 10.20.2.1/24 100.64.20.2/16", r.Gateway, r.WGAddr)
	}
	if len(r.Peers) != 1 || r.Peers[0].Endpoint.String() != "10.99.0.12:3001" || r.Peers[0].Keepalive != 20 {
		t.Errorf("peers: got %+v", r.Peers)
	}
	if !strings.Contains(r.Ruleset, "masquerade") || !strings.Contains(r.Ruleset, `iifname "public" drop`) {
		t.Errorf("ruleset lacks NAT or the inbound drop:\n%s", r.Ruleset)
	}
	hidden, err := Plan("p-", "NET", &n, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(hidden.Ruleset, "masquerade") || len(hidden.Routes) != 2 {
		t.Errorf("without uplink: got routes %v and NAT in\n%s", hidden.Routes, hidden.Ruleset)
	}
}

func TestPlanBadInput(t *testing.T) {
	good := newKey(t)
	for _, tt := range []struct {
		name string
		edit func(n *gridtypes.Network)
		want string
	}{
		{"bad key", func(n *gridtypes.Network) { n.WGPrivateKey = "nope" }, "wireguard_private_key"},
		{"no port", func(n *gridtypes.Network) { n.WGListenPort = 0 }, "wireguard_listen_port"},
		{"DHCP client's port", func(n *gridtypes.Network) { n.WGListenPort = 68 }, "wireguard_listen_port: 68 is below 1024"},
		{"system port", func(n *gridtypes.Network) { n.WGListenPort = 1023 }, "below 1024"},
		{"subnet outside range", func(n *gridtypes.Network) { n.Subnet = ipnet("10.21.2.0/24") }, "not inside"},
		{"peer bad key", func(n *gridtypes.Network) {
			n.Peers = []gridtypes.Peer{{Subnet: ipnet("10.20.3.0/24"), WGPublicKey: "AAAA", AllowedIPs: []gridtypes.IPNet{ipnet("10.20.3.0/24")}}}
		}, "wireguard_public_key"},
		{"peer hostname endpoint", func(n *gridtypes.Network) {
			n.Peers = []gridtypes.Peer{{Subnet: ipnet("10.20.3.0/24"), WGPublicKey: good.pub, Endpoint: "example.com:80", AllowedIPs: []gridtypes.IPNet{ipnet("10.20.3.0/24")}}}
		}, "endpoint"},
		{"peer claims our subnet", func(n *gridtypes.Network) {
			n.Peers = []gridtypes.Peer{{Subnet: ipnet("10.20.3.0/24"), WGPublicKey: good.pub, AllowedIPs: []gridtypes.IPNet{ipnet("10.20.2.128/25")}}}
		}, "inside this resource's subnet"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := testNet(t)
			tt.edit(&n)
			_, err := Plan("", "NET", &n, netip.Addr{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}
