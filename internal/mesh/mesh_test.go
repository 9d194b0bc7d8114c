package mesh

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

type key struct{ priv, pub string }

func newKey(t testing.TB) key {
	t.Helper()
	priv, pub, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return key{priv, pub}
}

func TestKeys(t *testing.T) {
	k := newKey(t)
	pub, err := PublicKey(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	if pub != k.pub {
		t.Errorf("PublicKey: got %s, want %s", pub, k.pub)
	}
	raw, err := ParseKey(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := ParseKey(k.pub)
	if got := PublicOf(raw); got != want {
		t.Errorf("PublicOf: got %x, want %x", got, want)
	}
	for _, bad := range []string{"", "x", "YWJj"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q): got no error", bad)
		}
	}
}

func TestWGAddress(t *testing.T) {
	for _, tt := range []struct{ subnet, want string }{
		{"10.20.2.0/24", "100.64.20.2/16"},
		{"10.3.1.0/24", "100.64.3.1/16"},
		{"192.168.255.0/24", "100.64.168.255/16"},
	} {
		if got := WGAddress(netip.MustParsePrefix(tt.subnet)).String(); got != tt.want {
			t.Errorf("WGAddress(%s): got %s, want %s", tt.subnet, got, tt.want)
		}
	}
}

func TestMesh(t *testing.T) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	user := newKey(t)
	m := Mesh{
		Range: netip.MustParsePrefix("10.20.0.0/16"),
		Nodes: []Node{
			{NodeID: 1, Subnet: netip.MustParsePrefix("10.20.2.0/24"), PrivateKey: k1.priv, Port: 3001, Endpoint: netip.MustParseAddr("10.99.0.11")},
			{NodeID: 2, Subnet: netip.MustParsePrefix("10.20.3.0/24"), PrivateKey: k2.priv, Port: 3002, Endpoint: netip.MustParseAddr("10.99.0.12")},
			{NodeID: 3, Subnet: netip.MustParsePrefix("10.20.4.0/24"), PrivateKey: k3.priv, Port: 3003},
		},
		Access: 1,
		Users:  []AccessPeer{{Subnet: netip.MustParsePrefix("10.20.5.0/24"), PublicKey: user.pub}},
	}
	rs, err := m.Resources()
	if err != nil {
		t.Fatal(err)
	}
	desc := func(n gridtypes.Network) string {
		var s []string
		for _, p := range n.Peers {
			var a []string
			for _, x := range p.AllowedIPs {
				a = append(a, x.String())
			}
			s = append(s, fmt.Sprintf("%s@%s[%s]", p.Subnet, p.Endpoint, strings.Join(a, " ")))
		}
		return strings.Join(s, "; ")
	}
	for i, want := range []string{
		"10.20.3.0/24@10.99.0.12:3002[10.20.3.0/24 100.64.20.3/32]; 10.20.4.0/24@[10.20.4.0/24 100.64.20.4/32]; 10.20.5.0/24@[10.20.5.0/24 100.64.20.5/32]",
		"10.20.2.0/24@10.99.0.11:3001[10.20.2.0/24 100.64.20.2/32 10.20.4.0/24 100.64.20.4/32 10.20.5.0/24 100.64.20.5/32]",
		"10.20.2.0/24@10.99.0.11:3001[10.20.0.0/16 100.64.0.0/16]",
	} {
		if got := desc(rs[i]); got != want {
			t.Errorf("node %d peers:\ngot  %s\nwant %s", i+1, got, want)
		}
		if err := rs[i].Valid(nil); err != nil {
			t.Errorf("node %d: invalid resource: %v", i+1, err)
		}
	}
	conf, err := m.WGQuick(user.priv, netip.MustParsePrefix("10.20.5.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(conf, "Endpoint = 10.99.0.11:3001") || !strings.Contains(conf, "Address = 100.64.20.5/16") {
		t.Errorf("wg-quick config:\n%s", conf)
	}
	m.Access = 3
	if _, err := m.Resources(); err == nil {
		t.Error("a hidden access node: got no error")
	}
	m.Access = 1
	m.Nodes[2].Subnet = m.Nodes[1].Subnet
	if _, err := m.Resources(); err == nil || !strings.Contains(err.Error(), "already used") {
		t.Errorf("overlapping subnets: got %v", err)
	}
	// A hidden node alone needs no access node; with another node it does.
	alone := Mesh{Range: m.Range, Nodes: []Node{m.Nodes[2]}}
	if _, err := alone.Resources(); err != nil {
		t.Errorf("a hidden node alone: %v", err)
	}
	alone.Nodes = append(alone.Nodes, Node{NodeID: 4, Subnet: netip.MustParsePrefix("10.20.9.0/24"), PrivateKey: k1.priv, Port: 3004})
	if _, err := alone.Resources(); err == nil {
		t.Error("two hidden nodes without an access node: got no error")
	}
	if p, _ := FreePort([]uint16{3000, 3001}, 0, 3000, 3005); p != 3002 {
		t.Errorf("FreePort: got %d, want 3002", p)
	}
}
