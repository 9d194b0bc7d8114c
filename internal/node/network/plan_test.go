package network

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with testdata/name (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s: got\n%s\nwant\n%s", name, got, want)
	}
}

// TestRulesets: the node's firewalls, whole (goldens).
func TestRulesets(t *testing.T) {
	golden(t, "node.nft", NodeRuleset(netip.MustParseAddr("192.0.2.1")))
	golden(t, "node-no-router.nft", NodeRuleset(netip.Addr{}))
	golden(t, "input.nft", InputRuleset("zos-in", []uint16{443, 9900}))
	golden(t, "input-no-ports.nft", InputRuleset("zos-in-0a1b2c3d", nil))
}

func TestIsTenantLink(t *testing.T) {
	for _, tt := range []struct {
		name string
		want bool
	}{
		{"b-75Ei7YpXX7mqy", true}, {"l-abc", true}, {"u-abc", true}, {"t-abc", true}, {"p-abc", true},
		{"t-", false}, {"eth0", false}, {"br-1234", false}, {"tap0", false}, {"", false},
	} {
		if got := IsTenantLink(tt.name); got != tt.want {
			t.Errorf("IsTenantLink(%q): got %v, want %v", tt.name, got, tt.want)
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

// fakeKernel records what would have happened as lines.
type fakeKernel struct {
	lines []string
	fail  string            // a line prefix that fails
	nft   map[string]string // last ruleset by "[ns] first line"
}

func (f *fakeKernel) do(format string, a ...any) error {
	l := fmt.Sprintf(format, a...)
	f.lines = append(f.lines, l)
	if f.fail != "" && strings.HasPrefix(l, f.fail) {
		return errors.New("injected failure")
	}
	return nil
}
func (f *fakeKernel) CreateNS(n string) error      { return f.do("netns add %s", n) }
func (f *fakeKernel) DeleteNS(n string) error      { return f.do("netns del %s", n) }
func (f *fakeKernel) AddBridge(ns, n string) error { return f.do("[%s] bridge %s", ns, n) }
func (f *fakeKernel) AddTap(ns, n, m string) error { return f.do("[%s] tap %s master %s", ns, n, m) }
func (f *fakeKernel) DefaultRoute(ns string) (string, netip.Addr, error) {
	return "uplink", netip.MustParseAddr("192.0.2.1"), f.do("[%s] default route", ns)
}
func (f *fakeKernel) DisableIPv6(ns, l string) error { return f.do("[%s] no ipv6 %s", ns, l) }
func (f *fakeKernel) SetUp(ns, l string) error       { return f.do("[%s] up %s", ns, l) }
func (f *fakeKernel) DeleteLink(ns, n string) error  { return f.do("[%s] del %s", ns, n) }
func (f *fakeKernel) Nft(ns, r string) error {
	first, _, _ := strings.Cut(r, "\n")
	if f.nft == nil {
		f.nft = map[string]string{}
	}
	f.nft["["+ns+"] "+first] = r
	return f.do("[%s] nft %s", ns, first)
}
func (f *fakeKernel) AddRoute(ns string, r Route) error { return f.do("[%s] route %s", ns, r) }
func (f *fakeKernel) ListNS(p string) ([]string, error) { return nil, f.do("netns list %s", p) }
func (f *fakeKernel) Links(ns, p string) ([]string, error) {
	return nil, f.do("[%s] links %s", ns, p)
}
func (f *fakeKernel) DelRoute(ns string, r Route) error { return f.do("[%s] route del %s", ns, r) }
func (f *fakeKernel) DialIn(_ context.Context, ns, network, addr string) (net.Conn, error) {
	return nil, f.do("[%s] dial %s %s", ns, network, addr)
}
func (f *fakeKernel) Sysctl(ns, k, v string) error { return f.do("[%s] sysctl %s=%s", ns, k, v) }
func (f *fakeKernel) AddAddr(ns, l string, p netip.Prefix) error {
	return f.do("[%s] addr %s %s", ns, l, p)
}
func (f *fakeKernel) AddVeth(ns, n, m, pns, p string) error {
	return f.do("[%s] veth %s master=%s peer [%s] %s", ns, n, m, pns, p)
}

type fakeWG struct{ k *fakeKernel }

func (w fakeWG) Start(name, tunNS, sockNS string) (Device, error) {
	return fakeDev{w.k, name}, w.k.do("[%s] wg %s sockets in [%s]", tunNS, name, sockNS)
}

type fakeDev struct {
	k    *fakeKernel
	name string
}

func (d fakeDev) Configure(_ [32]byte, port uint16, peers []Peer) error {
	return d.k.do("wg %s port %d peers %d", d.name, port, len(peers))
}
func (d fakeDev) Close() error { return d.k.do("wg %s close", d.name) }

func TestManagerLines(t *testing.T) {
	k := &fakeKernel{}
	m := NewManager(Config{Prefix: "", NodeNS: "node", Uplink: true}, k, fakeWG{k}, testLog(t))
	n := testNet(t)
	wl := netWorkload(t, 1, "net", n)
	if _, err := m.Provision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
	id := gridtypes.NetID(1, "net")
	got := strings.Join(k.lines, "\n")
	for _, want := range []string{
		"netns add n-" + id,
		"[n-" + id + "] no ipv6 default",
		"[n-" + id + "] no ipv6 all",
		"[n-" + id + "] sysctl net/ipv4/ip_forward=1",
		"[node] veth l-" + id + " master=b-" + id + " peer [n-" + id + "] n-" + id,
		"[n-" + id + "] addr n-" + id + " 10.20.2.1/24",
		"[n-" + id + "] wg w-" + id + " sockets in [node]",
		"wg w-" + id + " port 3000 peers 0",
		"[n-" + id + "] addr w-" + id + " 100.64.20.2/16",
		"[n-" + id + "] route 0.0.0.0/0 dev public via 100.127.0.1",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	// A failure half-way leaves nothing: the teardown runs.
	k2 := &fakeKernel{fail: "[n-"}
	m2 := NewManager(Config{NodeNS: "node", Uplink: true}, k2, fakeWG{k2}, testLog(t))
	if _, err := m2.Provision(context.Background(), wl); err == nil {
		t.Fatal("injected failure: got no error")
	}
	last := k2.lines[len(k2.lines)-4:]
	if last[0] != "[node] del l-"+id || last[3] != "netns del n-"+id {
		t.Errorf("teardown after failure: got %q", last)
	}
	if len(m2.WGPorts()) != 0 {
		t.Errorf("failed resource still holds its port")
	}
}

// TestManagerStart: the node namespace gets the input filter (in every
// mode: the tenant ports open, nothing else), and with an uplink
// forwarding and the forward filter naming the farm's router; Close
// removes both.
func TestManagerStart(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"uplink", Config{NodeNS: "node", Uplink: true, TenantPorts: []uint16{9900}}, []string{
			"netns list n-", "[node] links l-", "[node] links u-", "[node] links b-",
			"[node] nft table inet zos-in",
			"[node] default route",
			"[node] sysctl net/ipv4/ip_forward=1",
			"[node] nft table inet zos-nr",
		}},
		{"host namespace", Config{Prefix: "n1-", TenantPorts: []uint16{9900}}, []string{
			"netns list n1-n-",
			"[] nft table inet zos-in-1f0dc705",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{}
			m := NewManager(tt.cfg, k, fakeWG{k}, testLog(t))
			if err := m.Start(); err != nil {
				t.Fatal(err)
			}
			if got, want := strings.Join(k.lines, "\n"), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("start:\ngot\n%s\nwant\n%s", got, want)
			}
			in := k.nft["["+tt.cfg.NodeNS+"] table inet "+m.inputTable()]
			if in != InputRuleset(m.inputTable(), []uint16{9900}) {
				t.Errorf("input filter: got\n%s", in)
			}
			if tt.cfg.Uplink && k.nft["[node] table inet zos-nr"] != NodeRuleset(netip.MustParseAddr("192.0.2.1")) {
				t.Errorf("forward filter: got\n%s", k.nft["[node] table inet zos-nr"])
			}
			k.lines = nil
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(k.lines, "\n"); !strings.Contains(got, "nft table inet "+m.inputTable()) {
				t.Errorf("close: got\n%s\nwant the input filter removed", got)
			}
		})
	}
}

func TestMesh(t *testing.T) {
	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	user := newKey(t)
	m := Mesh{
		Range: netip.MustParsePrefix("10.20.0.0/16"),
		Nodes: []MeshNode{
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
	alone := Mesh{Range: m.Range, Nodes: []MeshNode{m.Nodes[2]}}
	if _, err := alone.Resources(); err != nil {
		t.Errorf("a hidden node alone: %v", err)
	}
	alone.Nodes = append(alone.Nodes, MeshNode{NodeID: 4, Subnet: netip.MustParsePrefix("10.20.9.0/24"), PrivateKey: k1.priv, Port: 3004})
	if _, err := alone.Resources(); err == nil {
		t.Error("two hidden nodes without an access node: got no error")
	}
	if p, _ := FreePort([]uint16{3000, 3001}, 0, 3000, 3005); p != 3002 {
		t.Errorf("FreePort: got %d, want 3002", p)
	}
}

func TestManagerUpdateRoutes(t *testing.T) {
	k := &fakeKernel{}
	m := NewManager(Config{NodeNS: "node"}, k, fakeWG{k}, testLog(t))
	extra := gridtypes.Peer{Subnet: ipnet("10.20.3.0/24"), WGPublicKey: newKey(t).pub,
		AllowedIPs: []gridtypes.IPNet{ipnet("10.20.3.0/24"), ipnet("192.168.9.0/24")}}
	n := testNet(t, extra)
	if _, err := m.Provision(context.Background(), netWorkload(t, 1, "net", n)); err != nil {
		t.Fatal(err)
	}
	n.Peers = nil
	k.lines = nil
	if _, err := m.Update(context.Background(), netWorkload(t, 1, "net", n)); err != nil {
		t.Fatal(err)
	}
	id := gridtypes.NetID(1, "net")
	want := "[n-" + id + "] route del 192.168.9.0/24 dev w-" + id
	if got := strings.Join(k.lines, "\n"); !strings.Contains(got, want) || strings.Contains(got, "netns add") {
		t.Errorf("update: want %q and no re-creation in\n%s", want, got)
	}
}
