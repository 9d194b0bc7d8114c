package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/testutil"
)

// The policy of the unit tests allows 127.0.0.0/8 (standing for the
// internet) and 10.0.0.0/8 (as a private farm would); the node's own
// address is 10.9.0.2 and its farm LAN 10.1.0.0/24.
var (
	nodeIP  = netip.MustParseAddr("10.9.0.2")
	farmLAN = netip.MustParsePrefix("10.1.0.0/24")
	nodeNR  = netip.MustParsePrefix("100.127.0.0/16")
)

func testPolicy(own *addrs) BackendPolicy {
	return BackendPolicy{
		Egress: egress.Policy{
			Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")},
			Own:   own.get,
		},
		FarmLAN:    func() []netip.Prefix { return []netip.Prefix{farmLAN} },
		NodeRanges: []netip.Prefix{nodeNR},
	}
}

// TestBackendPolicy: addresses are normalised before they are compared,
// the node's own and the farm LAN are refused even where the egress
// policy allows their range, and a tenant's network reaches only private
// addresses.
func TestBackendPolicy(t *testing.T) {
	p := testPolicy(&addrs{l: []netip.Addr{nodeIP}})
	tenantRange := netip.MustParsePrefix("10.1.0.0/16") // overlaps the farm LAN
	tests := []struct {
		addr          string
		internet      string // "" allowed, else a word of the refusal
		tenant        string // idem, through a network whose range is tenantRange
		tenantNoRange string // idem, the network's range unknown
	}{
		{"127.0.0.9", "", "loopback", "loopback"},
		{"10.9.0.2", "node itself", "node itself", "node itself"},
		{"::ffff:10.9.0.2", "node itself", "node itself", "node itself"},
		{"169.254.169.254", "link-local", "link-local", "link-local"},
		{"::ffff:169.254.169.254", "link-local", "link-local", "link-local"},
		{"64:ff9b::a9fe:a9fe", "link-local", "link-local", "link-local"},
		{"2002:a9fe:a9fe::1", "link-local", "link-local", "link-local"},
		{"fe80::1", "link-local", "link-local", "link-local"},
		{"239.1.1.1", "multicast", "multicast", "multicast"},
		{"0.0.0.0", "unspecified", "unspecified", "unspecified"},
		{"10.1.0.1", "farm LAN", "", "farm LAN"},
		{"::ffff:10.1.0.1", "farm LAN", "", "farm LAN"},
		{"10.2.0.5", "", "", ""},
		{"192.168.1.1", "private", "", ""},
		{"100.127.0.1", "private", "node's side", "node's side"},
		{"1.1.1.1", "", "public", "public"},
	}
	check := func(t *testing.T, what string, err error, want string) {
		t.Helper()
		if want == "" {
			if err != nil {
				t.Errorf("%s: got %v, want allowed", what, err)
			}
			return
		}
		if !errors.Is(err, egress.ErrDenied) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want refused (%s)", what, err, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			check(t, "internet", p.checkInternet(a), tt.internet)
			check(t, "tenant", p.checkTenant(a, tenantRange), tt.tenant)
			check(t, "tenant, range unknown", p.checkTenant(a, netip.Prefix{}), tt.tenantNoRange)
		})
	}
}

// TestManagerBackendAttacks: backends that would make the internet reach
// the node itself (also written IPv4-mapped), the host's metadata service
// or the farm LAN are refused when provisioned, over the internet path and
// through the tenant's network.
func TestManagerBackendAttacks(t *testing.T) {
	own := &addrs{l: []netip.Addr{nodeIP}}
	p := New(Config{}, &SelfSigned{}, testutil.Logger(t))
	nets := &fakeNetworks{}
	m := NewManager(ManagerConfig{Backends: testPolicy(own)}, p, fakeRegistry{domain: "gw.test"}, nets)
	ctx := context.Background()
	netName := "net"
	netWL := gridtypes.Workload{Name: "net", Type: gridtypes.NetworkType,
		Data: []byte(`{"ip_range":"10.20.0.0/16","subnet":"10.20.2.0/24"}`)}
	viaNet := func(wl string, backend string, passthrough bool) *provision.Workload {
		return gwWorkload(t, 7, wl, gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: wl + ".example.org",
			GatewayBase: gridtypes.GatewayBase{TLSPassthrough: passthrough, Backends: []gridtypes.Backend{gridtypes.Backend(backend)}, Network: &netName}}, netWL)
	}
	tests := []struct {
		name string
		wl   *provision.Workload
		want string // "" accepted
	}{
		{"node ip mapped", fqdnProxy(t, 7, "a1", "a1.example.org", "http://[::ffff:10.9.0.2]:9900"), "node itself"},
		{"node ip", fqdnProxy(t, 7, "a2", "a2.example.org", "http://10.9.0.2:9900"), "node itself"},
		{"node ip mapped passthrough", gwWorkload(t, 7, "a3", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "a3.example.org",
			GatewayBase: gridtypes.GatewayBase{TLSPassthrough: true, Backends: []gridtypes.Backend{"[::ffff:10.9.0.2]:9900"}}}), "node itself"},
		{"metadata", fqdnProxy(t, 7, "a4", "a4.example.org", "http://169.254.169.254"), "link-local"},
		{"metadata mapped", fqdnProxy(t, 7, "a5", "a5.example.org", "http://[::ffff:169.254.169.254]:80"), "link-local"},
		{"metadata nat64", fqdnProxy(t, 7, "a6", "a6.example.org", "http://[64:ff9b::a9fe:a9fe]:80"), "link-local"},
		{"farm router", fqdnProxy(t, 7, "a7", "a7.example.org", "http://10.1.0.1"), "farm LAN"},
		{"second backend bad", fqdnProxy(t, 7, "a8", "a8.example.org", "http://10.2.0.5:80", "http://10.1.0.1"), "farm LAN"},
		{"allowed", fqdnProxy(t, 7, "a9", "a9.example.org", "http://10.2.0.5:80"), ""},
		{"net: own subnet", viaNet("b1", "http://10.20.2.5:8080", false), ""},
		{"net: node ip mapped", viaNet("b2", "http://[::ffff:10.9.0.2]:9900", false), "node itself"},
		{"net: metadata", viaNet("b3", "169.254.169.254:443", true), "link-local"},
		{"net: farm LAN", viaNet("b4", "http://10.1.0.1:80", false), "farm LAN"},
		{"net: node side", viaNet("b5", "http://100.127.0.1:80", false), "node's side"},
		{"net: public", viaNet("b6", "http://1.1.1.1:80", false), "public"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Provision(ctx, tt.wl)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want refused (%s)", err, tt.want)
			}
			if p.Serves(tt.wl.Name + ".example.org") {
				t.Errorf("a refused workload's name is served")
			}
		})
	}
}

// TestBackendBecomesOwn: the dialler the manager gives a route checks
// every dial, so a backend accepted when provisioned is refused once its
// address is the node's: the node's service never sees a connection, in
// either mode. (Backends on loopback pass the test policy but not the
// workload's own validation, so the routes are set directly;
// TestRootGatewayAttacks in internal/node/network does it end to end.)
func TestBackendBecomesOwn(t *testing.T) {
	own := &addrs{l: []netip.Addr{nodeIP}}
	policy := testPolicy(own)
	p := New(Config{}, &SelfSigned{}, testutil.Logger(t))
	gw := serve(t, p).Addr().String()
	b := newBackend(t, "127.0.0.3:0")
	pass := newBackend(t, "127.0.0.3:0")
	if err := p.Set("1-2-app", Route{FQDN: "app.example.org", Backends: []string{b.URL}, Dial: policy.internetDial()}); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("1-2-pt", Route{FQDN: "pt.example.org", Backends: []string{pass.Addr}, Passthrough: true, Dial: policy.internetDial()}); err != nil {
		t.Fatal(err)
	}
	if body, err := get(gw, "app.example.org", netip.Addr{}, nil); err != nil || body != "hello app.example.org" {
		t.Fatalf("before: got %q, %v", body, err)
	}
	before := b.conns.accepted()
	own.add(netip.MustParseAddr("127.0.0.3"))
	if body, err := get(gw, "app.example.org", netip.Addr{}, nil); err == nil {
		t.Errorf("after the backend became the node's: got %q, want a refusal", body)
	}
	if got := b.conns.accepted(); got != before {
		t.Errorf("connections to the node's address: got %d, want %d", got, before)
	}
	_, _ = get(gw, "pt.example.org", netip.Addr{}, nil)
	if got := pass.conns.accepted(); got != 0 {
		t.Errorf("passthrough connections to the node's address: got %d, want 0", got)
	}
}

// TestDomainSpellings: however the farmer writes the gateway's domain
// (case, trailing dot, Unicode), another twin's fqdn proxy for a name
// under it is refused, so alice's name cannot be taken without its name
// contract; alice's name proxy gets the one spelling, and clients reach
// it whatever case or trailing dot their SNI has.
func TestDomainSpellings(t *testing.T) {
	for _, tt := range []struct {
		domain, canonical string
	}{
		{"gw.example.com", "gw.example.com"},
		{"GW.Example.com", "gw.example.com"},
		{"gw.example.com.", "gw.example.com"},
		{"GW.EXAMPLE.COM.", "gw.example.com"},
		{"bücher.example", "xn--bcher-kva.example"},
	} {
		t.Run(tt.domain, func(t *testing.T) {
			own := &addrs{l: []netip.Addr{nodeIP}}
			p := New(Config{}, &SelfSigned{}, testutil.Logger(t))
			m := NewManager(ManagerConfig{Backends: testPolicy(own)}, p, fakeRegistry{domain: tt.domain, names: map[string]uint32{"alice": 7}}, &fakeNetworks{})
			gw := serve(t, p).Addr().String()
			const mallory, alice = "http://10.2.0.8:80", "http://10.2.0.7:80"
			ctx := context.Background()
			for _, fqdn := range []string{
				"alice." + tt.canonical,
				"ALICE." + strings.ToUpper(tt.canonical),
				"alice." + tt.canonical + ".",
				tt.canonical,
			} {
				if _, err := m.Provision(ctx, fqdnProxy(t, 8, "steal", fqdn, mallory)); err == nil || !strings.Contains(err.Error(), "under the gateway's domain") {
					t.Errorf("twin 8's fqdn proxy %q: got %v, want refused", fqdn, err)
				}
			}
			// Name contracts are lower case: "Alice" is alice's "alice".
			res, err := m.Provision(ctx, gwWorkload(t, 7, "mine", gridtypes.GatewayNameProxyType, &gridtypes.GatewayNameProxy{Name: "Alice",
				GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{alice}}}))
			if err != nil {
				t.Fatal(err)
			}
			want := "alice." + tt.canonical
			if r, ok := res.(gridtypes.GatewayProxyResult); !ok || r.FQDN != want {
				t.Errorf("result: got %+v, want fqdn %s", res, want)
			}
			// The gateway answers a handshake only for a name it routes.
			for _, sni := range []string{want, strings.ToUpper(want), want + "."} {
				c, err := tls.Dial("tcp", gw, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
				if err != nil {
					t.Errorf("handshake for %s: %v", sni, err)
					continue
				}
				if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != want {
					t.Errorf("handshake for %s: got a certificate for %s, want %s", sni, cn, want)
				}
				c.Close()
			}
			if _, err := m.Provision(ctx, fqdnProxy(t, 8, "steal", "ALICE."+tt.canonical+".", mallory)); err == nil {
				t.Errorf("twin 8 took alice's name once alice served it")
			}
		})
	}
}
