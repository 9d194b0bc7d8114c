package network

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// Fast tests of the managers on fakeSystem: each case compares the whole
// sequence of kernel calls.

// netID is the id of twin 1's network "net", the one these tests make.
var netID = gridtypes.NetID(1, "net")

// expand replaces $ID in want with netID.
func expand(want []string) []string {
	out := make([]string, len(want))
	for i, l := range want {
		out[i] = strings.ReplaceAll(l, "$ID", netID)
	}
	return out
}

// createLines is what making twin 1's "net" (testNet: port 3000, no
// peers) does in namespace "node", with the public link when public.
func createLines(public bool) []string {
	l := []string{
		// Leftovers of an earlier run go first.
		"[node] del l-$ID", "[node] del u-$ID", "[node] del b-$ID", "netns del n-$ID",
		"netns add n-$ID",
		"[n-$ID] no ipv6 default",
		"[n-$ID] no ipv6 all",
		"[n-$ID] up lo",
		"[n-$ID] sysctl net/ipv4/ip_forward=1",
		"[n-$ID] nft load inet zos",
		"[node] bridge b-$ID",
		"[node] sysctl net/ipv4/conf/b-$ID/arp_ignore=8",
		"[node] veth l-$ID master=b-$ID peer [n-$ID] n-$ID",
		"[n-$ID] addr n-$ID 10.20.2.1/24",
	}
	if public {
		l = append(l,
			"[node] veth u-$ID master= peer [n-$ID] public",
			"[node] addr u-$ID 100.127.0.1/32",
			"[node] route "+publicAddr+"/32 dev u-$ID",
			"[n-$ID] addr public "+publicAddr+"/32",
		)
	}
	l = append(l,
		"[n-$ID] wg w-$ID sockets in [node]",
		"wg w-$ID port 3000 peers 0",
		"[n-$ID] addr w-$ID 100.64.20.2/16",
		"[n-$ID] up w-$ID",
		"[n-$ID] route 10.20.0.0/16 dev w-$ID",
	)
	if public {
		l = append(l, publicRoutes...)
	}
	return expand(l)
}

// publicRoutes lead from a resource to the node through its public link.
var publicRoutes = []string{"[n-$ID] route 100.127.0.1/32 dev public", "[n-$ID] route 0.0.0.0/0 dev public via 100.127.0.1"}

// publicAddr is the address allocPublic gives "net" (a hash of its id).
const publicAddr = "100.127.144.147"

// teardownLines is what removing "net" does; closed: its device ran.
func teardownLines(closed bool) []string {
	var l []string
	if closed {
		l = append(l, "wg w-$ID close")
	}
	return expand(append(l, "[node] del l-$ID", "[node] del u-$ID", "[node] del b-$ID", "netns del n-$ID"))
}

func newFakeManager(t *testing.T, cfg Config) (*Manager, *fakeSystem) {
	t.Helper()
	f := newFakeSystem()
	return NewManager(cfg, f.system(), testutil.Logger(t)), f
}

// TestManagerStart: the node namespace gets the input filter (in every
// mode: the tenant ports open, nothing else), and with an uplink
// forwarding and the forward filter naming the farm's router; leftovers
// of a run that did not stop cleanly go first (links only in a namespace
// of the node's own); Close removes the filters.
func TestManagerStart(t *testing.T) {
	for _, tt := range []struct {
		name      string
		cfg       Config
		leftovers bool
		start     []string
		close     []string
	}{
		{name: "uplink", cfg: Config{NodeNS: "node", Uplink: true, TenantPorts: []uint16{9900}}, start: []string{
			"netns list n-", "[node] links l-", "[node] links u-", "[node] links b-",
			"[node] nft load inet zos-in",
			"[node] default route",
			"[node] sysctl net/ipv4/ip_forward=1",
			"[node] sysctl net/ipv6/conf/uplink/accept_ra=2",
			"[node] sysctl net/ipv6/conf/uplink/autoconf=1",
			"[node] sysctl net/ipv6/conf/uplink/proxy_ndp=1",
			"[node] sysctl net/ipv6/conf/all/forwarding=1",
			"[node] ndp proxy flush dev uplink",
			"[node] nft load inet zos-nr",
		}, close: []string{
			"[node] nft drop inet zos-nr",
			"[node] nft drop inet zos-in",
		}},
		{name: "leftovers", cfg: Config{Prefix: "x-", NodeNS: "node", Uplink: true, TenantPorts: []uint16{9900}}, leftovers: true, start: []string{
			"netns list x-n-", "netns del x-n-a", "netns del x-n-b",
			"[node] links l-", "[node] del l-a", "[node] links u-", "[node] links b-", "[node] del b-a",
			"[node] nft load inet zos-in-c8b60efc",
			"[node] default route",
			"[node] sysctl net/ipv4/ip_forward=1",
			"[node] sysctl net/ipv6/conf/uplink/accept_ra=2",
			"[node] sysctl net/ipv6/conf/uplink/autoconf=1",
			"[node] sysctl net/ipv6/conf/uplink/proxy_ndp=1",
			"[node] sysctl net/ipv6/conf/all/forwarding=1",
			"[node] ndp proxy flush dev uplink",
			"[node] nft load inet zos-nr",
		}, close: []string{
			"[node] nft drop inet zos-nr",
			"[node] nft drop inet zos-in-c8b60efc",
		}},
		// The farm's static IPv6 goes on the uplink with its default route.
		{name: "static ipv6", cfg: Config{NodeNS: "node", Uplink: true, TenantPorts: []uint16{9900}, Static6: netip.MustParsePrefix("2001:db8:5::7/64"), Gateway6: netip.MustParseAddr("fe80::1")}, start: []string{
			"netns list n-", "[node] links l-", "[node] links u-", "[node] links b-",
			"[node] nft load inet zos-in",
			"[node] default route",
			"[node] sysctl net/ipv4/ip_forward=1",
			"[node] sysctl net/ipv6/conf/uplink/accept_ra=2",
			"[node] sysctl net/ipv6/conf/uplink/autoconf=1",
			"[node] sysctl net/ipv6/conf/uplink/proxy_ndp=1",
			"[node] sysctl net/ipv6/conf/all/forwarding=1",
			"[node] ndp proxy flush dev uplink",
			"[node] addr uplink 2001:db8:5::7/64",
			"[node] route ::/0 dev uplink via fe80::1",
			"[node] nft load inet zos-nr",
		}, close: []string{
			"[node] nft drop inet zos-nr",
			"[node] nft drop inet zos-in",
		}},
		// In the host's namespace: no forwarding, no NAT, no link
		// removed (the host's own links are never touched).
		{name: "host namespace", cfg: Config{Prefix: "n1-", TenantPorts: []uint16{9900}}, leftovers: true, start: []string{
			"netns list n1-n-",
			"[] nft load inet zos-in-1f0dc705",
		}, close: []string{
			"[] nft drop inet zos-in-1f0dc705",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newFakeManager(t, tt.cfg)
			if tt.leftovers {
				f.namespaces = []string{"x-n-a", "x-n-b", "n-other"}
				f.links = map[string][]string{"[node] l-": {"l-a"}, "[node] b-": {"b-a"}, "[] l-": {"l-host"}}
			}
			if err := m.Start(); err != nil {
				t.Fatal(err)
			}
			wantLines(t, "start", f.take(), tt.start)
			in := f.nft["["+tt.cfg.NodeNS+"] inet "+m.inputTable()]
			if in != InputRuleset(m.inputTable(), []uint16{9900}) {
				t.Errorf("input filter: got\n%s", in)
			}
			if nr := f.nft["[node] inet zos-nr"]; tt.cfg.Uplink && nr != NodeRuleset(f.router) {
				t.Errorf("forward filter: got\n%s\nwant\n%s", nr, NodeRuleset(f.router))
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			wantLines(t, "close", f.take(), tt.close)
			if len(f.nft) != 0 {
				t.Errorf("rulesets left after close: %v", f.nft)
			}
		})
	}
}

// TestManagerSystemIncomplete: a System with a missing part is refused at
// start, before anything is touched.
func TestManagerSystemIncomplete(t *testing.T) {
	f := newFakeSystem()
	sys := f.system()
	sys.Firewall = nil
	m := NewManager(Config{NodeNS: "node", Uplink: true}, sys, testutil.Logger(t))
	if err := m.Start(); err == nil || !strings.Contains(err.Error(), "incomplete") {
		t.Errorf("got %v, want an incomplete system refused", err)
	}
	wantLines(t, "start", f.take(), nil)
}

// TestManagerLifecycle: create, a second provision (nothing), a peers-only
// update (in place), an update that changes the subnet (made again),
// deprovision; with and without an uplink.
func TestManagerLifecycle(t *testing.T) {
	for _, tt := range []struct {
		name   string
		uplink bool
	}{{"uplink", true}, {"host namespace", false}} {
		t.Run(tt.name, func(t *testing.T) {
			m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: tt.uplink})
			ctx := context.Background()
			extra := gridtypes.Peer{Subnet: ipnet("10.20.3.0/24"), WGPublicKey: newKey(t).pub,
				AllowedIPs: []gridtypes.IPNet{ipnet("10.20.3.0/24"), ipnet("192.168.9.0/24")}}
			n := testNet(t)
			if _, err := m.Provision(ctx, netWorkload(t, 1, "net", n)); err != nil {
				t.Fatal(err)
			}
			wantLines(t, "create", f.take(), createLines(tt.uplink))
			if got := m.WGPorts(); len(got) != 1 || got[0] != 3000 {
				t.Errorf("ports: got %v, want [3000]", got)
			}

			if _, err := m.Provision(ctx, netWorkload(t, 1, "net", n)); err != nil {
				t.Fatal(err)
			}
			wantLines(t, "provision again", f.take(), nil)

			// Peers only: the device is configured again, routes follow.
			n.Peers = []gridtypes.Peer{extra}
			if _, err := m.Update(ctx, netWorkload(t, 1, "net", n)); err != nil {
				t.Fatal(err)
			}
			up := []string{"wg w-$ID port 3000 peers 1", "[n-$ID] route 10.20.0.0/16 dev w-$ID", "[n-$ID] route 192.168.9.0/24 dev w-$ID"}
			if tt.uplink {
				up = append(up, publicRoutes...)
			}
			wantLines(t, "add a peer", f.take(), expand(up))
			n.Peers = nil
			if _, err := m.Update(ctx, netWorkload(t, 1, "net", n)); err != nil {
				t.Fatal(err)
			}
			down := []string{"wg w-$ID port 3000 peers 0", "[n-$ID] route 10.20.0.0/16 dev w-$ID"}
			if tt.uplink {
				down = append(down, publicRoutes...)
			}
			down = append(down, "[n-$ID] route del 192.168.9.0/24 dev w-$ID")
			wantLines(t, "remove the peer", f.take(), expand(down))

			// Another listen port: the resource is made again.
			n.WGListenPort = 3001
			if _, err := m.Update(ctx, netWorkload(t, 1, "net", n)); err != nil {
				t.Fatal(err)
			}
			again := append(teardownLines(true), createLines(tt.uplink)...)
			for i, l := range again {
				again[i] = strings.Replace(l, "port 3000", "port 3001", 1)
			}
			wantLines(t, "new port", f.take(), again)

			// A port of the node itself: refused, nothing touched.
			m.cfg.ReservedPorts = []uint16{3002}
			n.WGListenPort = 3002
			if _, err := m.Update(ctx, netWorkload(t, 1, "net", n)); err == nil || !strings.Contains(err.Error(), "used by the node") {
				t.Errorf("reserved port: got %v", err)
			}
			wantLines(t, "reserved port", f.take(), nil)

			if err := m.Deprovision(ctx, netWorkload(t, 1, "net", n)); err != nil {
				t.Fatal(err)
			}
			wantLines(t, "deprovision", f.take(), teardownLines(true))
			// Unknown (e.g. after a crash): whatever exists is removed.
			if err := m.Deprovision(ctx, netWorkload(t, 1, "net", n)); err != nil {
				t.Fatal(err)
			}
			wantLines(t, "deprovision again", f.take(), teardownLines(false))
			if got := m.WGPorts(); len(got) != 1 || got[0] != 3002 {
				t.Errorf("ports after deprovision: got %v, want only the node's [3002]", got)
			}
		})
	}
}

// TestManagerCreateFails: a failure half-way removes what was made (the
// device closed), and the resource holds no port.
func TestManagerCreateFails(t *testing.T) {
	m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: true})
	f.fail = expand([]string{"[n-$ID] addr w-"})[0]
	if _, err := m.Provision(context.Background(), netWorkload(t, 1, "net", testNet(t))); err == nil {
		t.Fatal("injected failure: got no error")
	}
	all := createLines(true)
	cut := 0
	for i, l := range all {
		if strings.HasPrefix(l, f.fail) {
			cut = i + 1
		}
	}
	wantLines(t, "create", f.take(), append(all[:cut:cut], teardownLines(true)...))
	if len(m.WGPorts()) != 0 {
		t.Errorf("failed resource still holds its port")
	}
}

// TestManagerAttach: a VM's tap joins the resource's bridge; a public tap
// is routed with proxy ARP; refusals touch nothing.
func TestManagerAttach(t *testing.T) {
	m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: true})
	if _, err := m.Attach(1, "net", "t-vm"); err == nil || !strings.Contains(err.Error(), "no resource") {
		t.Errorf("attach before the network: got %v", err)
	}
	if _, err := m.Provision(context.Background(), netWorkload(t, 1, "net", testNet(t))); err != nil {
		t.Fatal(err)
	}
	f.take()
	a, err := m.Attach(1, "net", "t-vm")
	if err != nil {
		t.Fatal(err)
	}
	want := Attachment{NS: "node", Bridge: "b-" + netID, Gateway: netip.MustParsePrefix("10.20.2.1/24"),
		ResourceNS: "n-" + netID, Range: netip.MustParsePrefix("10.20.0.0/16")}
	if a != want {
		t.Errorf("attachment: got %+v, want %+v", a, want)
	}
	if err := m.AttachPublic("p-vm", netip.MustParseAddr("203.0.113.10")); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach("t-vm"); err != nil {
		t.Fatal(err)
	}
	dial, err := m.Dialer(1, "net")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = dial(context.Background(), "tcp", "10.20.2.5:80")
	wantLines(t, "attach", f.take(), expand([]string{
		"[node] tap t-vm master=b-$ID",
		"[node] default route",
		"[node] tap p-vm master=",
		"[node] sysctl net/ipv4/conf/p-vm/proxy_arp=1",
		"[node] sysctl net/ipv4/conf/uplink/proxy_arp=1",
		"[node] route 203.0.113.10/32 dev p-vm",
		"[node] del t-vm",
		"[n-$ID] dial tcp 10.20.2.5:80",
	}))

	// Taps the node's firewall would not know as tenant links.
	for _, tap := range []string{"eth0", "tap0", "t-"} {
		if _, err := m.Attach(1, "net", tap); err == nil {
			t.Errorf("attach %q: got no error", tap)
		}
		if err := m.AttachPublic(tap, netip.MustParseAddr("203.0.113.10")); err == nil {
			t.Errorf("attach public %q: got no error", tap)
		}
	}
	if _, err := m.Dialer(1, "other"); err == nil {
		t.Error("dialer of an unknown network: got no error")
	}
	wantLines(t, "refused", f.take(), nil)

	// Without a default route there is no uplink to proxy for.
	f.uplink, f.router = "", netip.Addr{}
	if err := m.AttachPublic("p-vm2", netip.MustParseAddr("203.0.113.11")); err == nil || !strings.Contains(err.Error(), "no default route") {
		t.Errorf("no default route: got %v", err)
	}
	wantLines(t, "no default route", f.take(), []string{"[node] default route"})

	// A node in the host's namespace has no public IPs for VMs.
	hm, hf := newFakeManager(t, Config{})
	if err := hm.AttachPublic("p-vm", netip.MustParseAddr("203.0.113.10")); err == nil || !strings.Contains(err.Error(), "no public uplink") {
		t.Errorf("host namespace: got %v", err)
	}
	wantLines(t, "host namespace", hf.take(), nil)
}

// TestPublicIPManagerLines: provision takes the contract's first free IP
// and loads the tap's anti-spoofing filter; deprovision drops it.
func TestPublicIPManagerLines(t *testing.T) {
	f := newFakeSystem()
	c := registry.Contract{ID: 9, PublicIPs: []registry.PublicIP{{IP: "203.0.113.10/24", Gateway: "203.0.113.1"}}}
	d := &gridtypes.Deployment{TwinID: 7, ContractID: 9}
	wl := ipWorkload(t, d, "pip")
	m := NewPublicIPManager(PublicIPConfig{NodeNS: "node"}, f.system().Firewall, fakeContracts{9: c}, nil, testutil.Logger(t))
	res, err := m.Provision(context.Background(), wl)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.(gridtypes.PublicIPResult); r.IP.String() != "203.0.113.10/24" || r.Gateway != "203.0.113.1" {
		t.Errorf("result: got %+v", r)
	}
	table := "inet " + filterTable(PublicTap(wl.ID))
	if got, want := f.nft["[node] "+table], PublicIPRuleset(PublicTap(wl.ID), netip.MustParseAddr("203.0.113.10"), netip.Addr{}); got != want {
		t.Errorf("filter: got\n%s\nwant\n%s", got, want)
	}
	if err := m.Deprovision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "public ip", f.take(), []string{"[node] nft load " + table, "[node] nft drop " + table})
}
