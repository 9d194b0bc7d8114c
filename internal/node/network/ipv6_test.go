package network

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestDeriveIPv6: a VM's address is the prefix with the modified EUI-64 of
// its tap's MAC (what SLAAC gives that MAC); bad input is refused.
func TestDeriveIPv6(t *testing.T) {
	p := netip.MustParsePrefix("2001:db8:1::/64")
	for _, tt := range []struct {
		name   string
		prefix netip.Prefix
		mac    net.HardwareAddr
		want   string
		err    string
	}{
		{"locally administered MAC", p, net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}, "2001:db8:1:0:11:22ff:fe33:4455", ""},
		{"universal MAC", p, net.HardwareAddr{0x00, 0x11, 0x22, 0x33, 0x44, 0x55}, "2001:db8:1:0:211:22ff:fe33:4455", ""},
		{"host bits of the prefix ignored", netip.MustParsePrefix("2001:db8:1::9/64"), net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, "2001:db8:1::ff:fe00:1", ""},
		{"not a /64", netip.MustParsePrefix("2001:db8:1::/56"), net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, "", "not an IPv6 /64"},
		{"IPv4 prefix", netip.MustParsePrefix("10.0.0.0/8"), net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, "", "not an IPv6 /64"},
		{"short MAC", p, net.HardwareAddr{0x02, 0}, "", "not 48 bits"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DeriveIPv6(tt.prefix, tt.mac)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, %v, want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Errorf("got %v, %v, want %s", got, err, tt.want)
			}
		})
	}
	// Deterministic per workload, distinct between workloads.
	a := gridtypes.NewWorkloadID(1, 2, "a")
	b := gridtypes.NewWorkloadID(1, 2, "b")
	a1, _ := DeriveIPv6(p, PublicMAC(PublicTap(a)))
	a2, _ := DeriveIPv6(p, PublicMAC(PublicTap(a)))
	b1, _ := DeriveIPv6(p, PublicMAC(PublicTap(b)))
	if a1 != a2 || a1 == b1 || !p.Contains(a1) {
		t.Errorf("got a=%s a again=%s b=%s, want a stable address per workload in %s", a1, a2, b1, p)
	}
}

func TestIsPublic6(t *testing.T) {
	for _, tt := range []struct {
		ip   string
		want bool
	}{
		{"2001:db8:1::1", true}, {"2a01:4f8::1", true},
		{"fd99::1", false}, {"fe80::1", false}, {"ff02::1", false}, {"::1", false}, {"::", false},
		{"::ffff:10.0.0.1", false}, {"10.0.0.1", false},
	} {
		if got := IsPublic6(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("IsPublic6(%s): got %v, want %v", tt.ip, got, tt.want)
		}
	}
}

// TestPrefix6: the node's /64 is the farm's static one, else SLAAC's on
// the uplink (ULA, link-local and non-/64 addresses skipped), else
// ErrNoIPv6.
func TestPrefix6(t *testing.T) {
	m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: true})
	if _, err := m.Prefix6(); !errors.Is(err, ErrNoIPv6) {
		t.Errorf("no address: got %v, want ErrNoIPv6", err)
	}
	f.addrs = map[string][]netip.Prefix{"[node] uplink": {
		netip.MustParsePrefix("10.99.0.11/24"), netip.MustParsePrefix("fd99::b/64"),
		netip.MustParsePrefix("2001:db8:9::1/128"), netip.MustParsePrefix("2001:db8:1:0:aa:bbff:fecc:1/64"),
	}}
	if got, err := m.Prefix6(); err != nil || got.String() != "2001:db8:1::/64" {
		t.Errorf("slaac: got %v, %v, want 2001:db8:1::/64", got, err)
	}
	if !m.HasIPv6() {
		t.Error("HasIPv6: got false, want true")
	}
	if got, err := m.Addr6(); err != nil || got.String() != "2001:db8:1:0:aa:bbff:fecc:1" {
		t.Errorf("Addr6: got %v, %v, want the uplink's SLAAC address", got, err)
	}
	s, _ := newFakeManager(t, Config{NodeNS: "node", Uplink: true, Static6: netip.MustParsePrefix("2001:db8:5::7/64")})
	if got, err := s.Prefix6(); err != nil || got.String() != "2001:db8:5::/64" {
		t.Errorf("static: got %v, %v, want 2001:db8:5::/64", got, err)
	}
	if got, err := s.Addr6(); err != nil || got.String() != "2001:db8:5::7" {
		t.Errorf("static Addr6: got %v, %v, want 2001:db8:5::7", got, err)
	}
	h, _ := newFakeManager(t, Config{})
	if _, err := h.Addr6(); !errors.Is(err, ErrNoIPv6) {
		t.Errorf("host namespace Addr6: got %v, want ErrNoIPv6", err)
	}
	if h.HasIPv6() {
		t.Error("host namespace: got IPv6, want none")
	}
}

// TestStatic6Refused: a bad farm IPv6 config stops Start with a clear
// error before anything is put on the uplink.
func TestStatic6Refused(t *testing.T) {
	for _, tt := range []struct {
		name string
		ip   string
		gw   string
		err  string
	}{
		{"not a /64", "2001:db8:5::7/48", "fe80::1", "want a public IPv6 address in a /64"},
		{"private", "fd00::7/64", "fe80::1", "want a public IPv6 address in a /64"},
		{"gateway outside", "2001:db8:5::7/64", "2001:db8:6::1", "gw6"},
		{"gateway is the node", "2001:db8:5::7/64", "2001:db8:5::7", "gw6"},
		{"no gateway", "2001:db8:5::7/64", "", "gw6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var gw netip.Addr
			if tt.gw != "" {
				gw = netip.MustParseAddr(tt.gw)
			}
			m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: true, Static6: netip.MustParsePrefix(tt.ip), Gateway6: gw})
			err := m.Start()
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %v, want an error with %q", err, tt.err)
			}
			for _, l := range f.take() {
				if strings.Contains(l, "addr uplink") || strings.Contains(l, "route ::/0") {
					t.Errorf("got %q, want nothing on the uplink", l)
				}
			}
		})
	}
}

// TestAttachPublic6Lines: an IPv6 public tap gets IPv6 on (no DAD), the
// node's fe80::1, a /128 route and an NDP proxy entry on the uplink;
// Detach removes the proxy entry with the tap; a non-public address is
// refused.
func TestAttachPublic6Lines(t *testing.T) {
	m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: true})
	ip6 := netip.MustParseAddr("2001:db8:1::11:22ff:fe33:4455")
	if err := m.AttachPublic("p-vm", netip.MustParseAddr("203.0.113.10"), ip6); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach("p-vm"); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach("p-vm"); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "attach", f.take(), []string{
		"[node] default route",
		"[node] tap p-vm master=",
		"[node] sysctl net/ipv4/conf/p-vm/proxy_arp=1",
		"[node] sysctl net/ipv4/conf/uplink/proxy_arp=1",
		"[node] route 203.0.113.10/32 dev p-vm",
		"[node] sysctl net/ipv6/conf/p-vm/accept_dad=0",
		"[node] sysctl net/ipv6/conf/p-vm/disable_ipv6=0",
		"[node] sysctl net/ipv6/conf/uplink/proxy_ndp=1",
		"[node] addr p-vm fe80::1/64",
		"[node] route " + ip6.String() + "/128 dev p-vm",
		"[node] ndp proxy " + ip6.String() + " dev uplink",
		"[node] ndp proxy del " + ip6.String() + " dev uplink",
		"[node] del p-vm",
		"[node] del p-vm",
	})
	if err := m.AttachPublic("p-vm", netip.MustParseAddr("fd00::5")); err == nil || !strings.Contains(err.Error(), "not a public IPv6") {
		t.Errorf("ULA: got %v, want refused", err)
	}
	if err := m.AttachPublic("p-vm"); err == nil {
		t.Error("no address: got no error")
	}
}

type fakePrefixes struct {
	p   netip.Prefix
	err error
}

func (f fakePrefixes) Prefix6() (netip.Prefix, error) { return f.p, f.err }

func ipWorkloadV(t testing.TB, d *gridtypes.Deployment, name string, v4, v6 bool) *provision.Workload {
	wl := gridtypes.Workload{Name: name, Type: gridtypes.PublicIPType}
	raw, _ := json.Marshal(gridtypes.PublicIP{V4: v4, V6: v6})
	wl.Data = raw
	d.Workloads = append(d.Workloads, wl)
	return &provision.Workload{Workload: wl, ID: gridtypes.NewWorkloadID(d.TwinID, d.ContractID, name), Deployment: d}
}

// TestPublicIPManagerV6: v6 gives the derived address in result ip6 and a
// filter holding it; without IPv6 on the node a v6 workload fails with
// ErrNoIPv6 and loads nothing, and v4 keeps working.
func TestPublicIPManagerV6(t *testing.T) {
	c := registry.Contract{ID: 9, PublicIPs: []registry.PublicIP{{IP: "203.0.113.10/24", Gateway: "203.0.113.1"}}}
	prefix := netip.MustParsePrefix("2001:db8:1::/64")
	for _, tt := range []struct {
		name   string
		v4, v6 bool
		pfx    fakePrefixes
		want4  string
		err    error
	}{
		{"v6 only", false, true, fakePrefixes{p: prefix}, "", nil},
		{"dual", true, true, fakePrefixes{p: prefix}, "203.0.113.10", nil},
		{"no RA: v6 refused", false, true, fakePrefixes{err: ErrNoIPv6}, "", ErrNoIPv6},
		{"no RA: v4 still works", true, false, fakePrefixes{err: ErrNoIPv6}, "203.0.113.10", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSystem()
			d := &gridtypes.Deployment{TwinID: 7, ContractID: 9}
			wl := ipWorkloadV(t, d, "pip", tt.v4, tt.v6)
			m := NewPublicIPManager(PublicIPConfig{NodeNS: "node"}, f.system().Firewall, fakeContracts{9: c}, tt.pfx, testutil.Logger(t))
			res, err := m.Provision(context.Background(), wl)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v, want %v", err, tt.err)
				}
				wantLines(t, "nothing loaded", f.take(), nil)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := res.(gridtypes.PublicIPResult)
			tap := PublicTap(wl.ID)
			var want4, want6 netip.Addr
			if tt.want4 != "" {
				want4 = netip.MustParseAddr(tt.want4)
			}
			if tt.v6 {
				want6, _ = DeriveIPv6(prefix, PublicMAC(tap))
				if r.IPv6.String() != netip.PrefixFrom(want6, 64).String() {
					t.Errorf("ip6: got %s, want %s/64", r.IPv6, want6)
				}
			}
			if got := r.IP.String(); (tt.want4 == "") != r.IP.IsZero() || tt.want4 != "" && got != tt.want4+"/24" {
				t.Errorf("ip: got %s, want %q", got, tt.want4)
			}
			if got, want := f.nft["[node] inet "+filterTable(tap)], PublicIPRuleset(tap, want4, want6); got != want {
				t.Errorf("filter: got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestSetStatic6: the farm's IPv6 config read from the node's record after
// registration puts the address on the uplink and the default route via
// gw6; Prefix6 then finds it. Bad values and a node without an uplink of
// its own are refused with the field named, doing nothing.
func TestSetStatic6(t *testing.T) {
	m, f := newFakeManager(t, Config{NodeNS: "node", Uplink: true})
	if err := m.SetStatic6("2001:db8:5::7/64", "fe80::1"); err != nil {
		t.Fatal(err)
	}
	wantLines(t, "set", f.take(), []string{
		"[node] default route",
		"[node] addr uplink 2001:db8:5::7/64",
		"[node] route ::/0 dev uplink via fe80::1",
	})
	for _, tt := range []struct{ name, ip, gw, err string }{
		{"not a prefix", "2001:db8:5::7", "fe80::1", "public config ipv6"},
		{"not a /64", "2001:db8:5::7/48", "fe80::1", "public config ipv6"},
		{"ipv4", "203.0.113.5/24", "203.0.113.1", "public config ipv6"},
		{"bad gateway", "2001:db8:5::7/64", "nope", "public config gw6"},
		{"no gateway", "2001:db8:5::7/64", "", "public config gw6"},
		{"gateway outside", "2001:db8:5::7/64", "2001:db8:6::1", "public config gw6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := m.SetStatic6(tt.ip, tt.gw); err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("got %v, want an error with %q", err, tt.err)
			}
			if lines := f.take(); len(lines) != 0 {
				t.Errorf("refused config did %v, want nothing", lines)
			}
		})
	}
	h, _ := newFakeManager(t, Config{})
	if err := h.SetStatic6("2001:db8:5::7/64", "fe80::1"); err == nil {
		t.Error("a node in the host's namespace took the farm's IPv6")
	}
}
