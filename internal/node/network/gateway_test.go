package network

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// fakeRegistry holds name contracts; the node's domain is written as a
// farmer might ("GW.Test."): the gateway normalises it.
type fakeRegistry struct{ names map[string]uint32 }

func (f fakeRegistry) NameOwner(_ context.Context, name string) (uint32, error) {
	if t, ok := f.names[name]; ok {
		return t, nil
	}
	return 0, errors.New("no name contract")
}
func (f fakeRegistry) Domain(context.Context) (string, error) { return "GW.Test.", nil }

func gwWorkload(t testing.TB, twin uint32, name string, typ gridtypes.WorkloadType, data gridtypes.WorkloadData) *provision.Workload {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	wl := gridtypes.Workload{Name: name, Type: typ, Data: raw}
	d := &gridtypes.Deployment{TwinID: twin, ContractID: 2, Workloads: []gridtypes.Workload{wl}}
	return &provision.Workload{Workload: wl, ID: gridtypes.NewWorkloadID(twin, 2, name), Deployment: d}
}

// listenIn listens on addr inside namespace ns.
func listenIn(t testing.TB, ns, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// TestRootGateway: a gateway on node 1 serves name.domain from a backend
// in the twin's private network (TLS terminated) and an fqdn by SNI
// passthrough; names of other twins and backends on the node are refused.
func TestRootGateway(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	m := labManagers(t, l)[0]
	ctx := context.Background()
	k := newKey(t)
	if _, err := m.Provision(ctx, netWorkload(t, 7, "net", gridtypes.Network{NetworkIPRange: ipnet("10.20.0.0/16"), Subnet: ipnet("10.20.2.0/24"), WGPrivateKey: k.priv, WGListenPort: 6300})); err != nil {
		t.Fatal(err)
	}
	nrNS := NamesOf(l.Nodes[0].Prefix, gridtypes.NetID(7, "net")).NS

	// Backends inside the network resource (standing for a VM).
	web := listenIn(t, nrNS, "10.20.2.1:8080")
	go func() {
		_ = http.Serve(web, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello from "+r.Host)
		}))
	}()
	backendCerts := &gateway.SelfSigned{}
	tlsLn := tls.NewListener(listenIn(t, nrNS, "10.20.2.1:8443"), &tls.Config{GetCertificate: backendCerts.GetCertificate})
	go func() {
		_ = http.Serve(tlsLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "passthrough ok") }))
	}()

	gw := startGateway(t, l, m, fakeRegistry{names: map[string]uint32{"app": 7, "theirs": 8}})
	proxy, gm, client := gw.proxy, gw.m, gw.client

	netName := "net"
	app := gwWorkload(t, 7, "app", gridtypes.GatewayNameProxyType, &gridtypes.GatewayNameProxy{Name: "app",
		GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}, Network: &netName}})
	res, err := gm.Provision(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := res.(gridtypes.GatewayProxyResult); !ok || r.FQDN != "app.gw.test" {
		t.Errorf("result: got %+v, want fqdn app.gw.test", res)
	}
	pt := gwWorkload(t, 7, "pt", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "secure.example.org",
		GatewayBase: gridtypes.GatewayBase{TLSPassthrough: true, Backends: []gridtypes.Backend{"10.20.2.1:8443"}, Network: &netName}})
	if _, err := gm.Provision(ctx, pt); err != nil {
		t.Fatal(err)
	}

	body, subj, err := client("app.gw.test")
	if err != nil || body != "hello from app.gw.test" || subj.CN != "app.gw.test" {
		t.Errorf("name proxy: got %q (cert %+v, %v)", body, subj, err)
	}
	body, subj, err = client("secure.example.org")
	if err != nil || body != "passthrough ok" || subj.CN != "secure.example.org" {
		t.Errorf("passthrough: got %q (cert %+v, %v)", body, subj, err)
	}
	if _, err := backendCerts.GetCertificate(&tls.ClientHelloInfo{ServerName: "secure.example.org"}); err != nil {
		t.Fatal(err)
	}
	if mt := proxy.Metrics()[string(app.ID)]; mt.In == 0 || mt.Out == 0 {
		t.Errorf("bytes of app: got %+v, want both counted", mt)
	}
	if _, _, err := client("unknown.gw.test"); err == nil {
		t.Error("an unknown name was served")
	}

	for _, bad := range []struct {
		name string
		wl   *provision.Workload
		want string
	}{
		{"name of another twin", gwWorkload(t, 7, "x", gridtypes.GatewayNameProxyType, &gridtypes.GatewayNameProxy{Name: "theirs",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}}}), "another twin"},
		{"no name contract", gwWorkload(t, 7, "y", gridtypes.GatewayNameProxyType, &gridtypes.GatewayNameProxy{Name: "free",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}}}), "name contract"},
		{"backend on the node", gwWorkload(t, 7, "z", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "a.example.org",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{gridtypes.Backend("http://" + l.Nodes[0].IP.String())}}}), "node itself"},
		{"loopback backend", gwWorkload(t, 7, "w", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "b.example.org",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://127.0.0.1:80"}}}), "loopback"},
		{"fqdn under the domain", gwWorkload(t, 7, "v", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "x.gw.test",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}}}), "domain"},
		{"name not a DNS label", gwWorkload(t, 7, "u", gridtypes.GatewayNameProxyType, &gridtypes.GatewayNameProxy{Name: "my_app",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}}}), "DNS label"},
		{"fqdn label not DNS", gwWorkload(t, 7, "s", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "-a.example.org",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}}}), "not a domain name"},
		{"name in use", gwWorkload(t, 8, "app", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "secure.example.org",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://198.51.100.1:8081"}}}), "already served"},
	} {
		if _, err := gm.Provision(ctx, bad.wl); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: got %v, want an error with %q", bad.name, err, bad.want)
		}
	}
	if err := gm.Deprovision(ctx, app); err != nil {
		t.Fatal(err)
	}
	if _, _, err := client("app.gw.test"); err == nil {
		t.Error("a deleted name is still served")
	}
}

type x509Subject struct{ CN string }

// labGateway is a gateway on node 1 of a lab, on its LAN address.
type labGateway struct {
	proxy *gateway.Proxy
	m     *gateway.Manager
	// client requests https://name/ from the lab's internet.
	client func(name string) (string, *x509Subject, error)
}

// nsAddrs are the addresses of namespace ns: the node's own.
func nsAddrs(ns string) []netip.Addr {
	m, err := rtnl.Addrs(ns)
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, ps := range m {
		for _, p := range ps {
			out = append(out, p.Addr())
		}
	}
	return out
}

// labPolicy is the backend policy of node 1: the lab's internet (a
// documentation range) allowed, the node's addresses read from its
// namespace on every check, the lab's LAN as the farm LAN.
func labPolicy(l *netlab.Lab) gateway.BackendPolicy {
	return gateway.BackendPolicy{
		Egress: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
			Own: func() []netip.Addr { return nsAddrs(l.Nodes[0].NS) }},
		FarmLAN:    func() []netip.Prefix { return []netip.Prefix{netip.PrefixFrom(netlab.LANGateway, 24).Masked()} },
		NodeRanges: []netip.Prefix{PublicRange},
		NS:         l.Nodes[0].NS,
	}
}

func startGateway(t *testing.T, l *netlab.Lab, m *Manager, reg gateway.Registry) labGateway {
	t.Helper()
	certs := &gateway.SelfSigned{}
	proxy := gateway.New(gateway.Config{}, certs, testutil.Logger(t))
	front := listenIn(t, l.Nodes[0].NS, net.JoinHostPort(l.Nodes[0].IP.String(), "443"))
	testutil.Go(t, "serving the proxy", func(ctx context.Context) error { return proxy.Serve(ctx, front) })
	client := func(name string) (string, *x509Subject, error) {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: name},
			// The transport dials on its own goroutines: enter the
			// namespace in the dial itself.
			DialContext: func(ctx context.Context, network, _ string) (c net.Conn, err error) {
				err = netns.Do(l.Internet, func() error {
					c, err = (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(l.Nodes[0].IP.String(), "443"))
					return err
				})
				return c, err
			},
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + name + "/")
		if err != nil {
			return "", nil, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return string(b), nil, errors.New(resp.Status)
		}
		return string(b), &x509Subject{CN: resp.TLS.PeerCertificates[0].Subject.CommonName}, nil
	}
	return labGateway{proxy: proxy, m: gateway.NewManager(gateway.ManagerConfig{Backends: labPolicy(l)}, proxy, reg, m), client: client}
}

// countListener counts the connections a listener accepted.
type countListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// serveCounted serves "answer" over HTTP on ln and counts its connections.
func serveCounted(ln net.Listener, answer string) *countListener {
	cl := &countListener{Listener: ln}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, answer) })}
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(cl) }()
	return cl
}

// TestRootGatewayAttacks: from the internet, a tenant's gateway cannot be
// turned against the node, the host's metadata service or the farm LAN:
// backends naming the node (also IPv4-mapped), link-local or farm LAN
// addresses are refused, over the internet path and through the tenant's
// network; a backend that becomes the node's address after it was
// accepted is refused when dialled. A backend on the internet works.
func TestRootGatewayAttacks(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	m := labManagers(t, l)[0]
	ctx := context.Background()
	k := newKey(t)
	netWL := netWorkload(t, 7, "net", gridtypes.Network{NetworkIPRange: ipnet("10.20.0.0/16"), Subnet: ipnet("10.20.2.0/24"), WGPrivateKey: k.priv, WGListenPort: 6300})
	if _, err := m.Provision(ctx, netWL); err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, l, m, fakeRegistry{})
	node := l.Nodes[0]
	// A service of the node on its LAN address (zdb's port).
	nodeSvc := serveCounted(listenIn(t, node.NS, net.JoinHostPort(node.IP.String(), "9900")), "node service")
	// A backend on the internet.
	serveCounted(listenIn(t, l.Internet, net.JoinHostPort(netlab.InternetHost.String(), "8081")), "internet backend")

	netName := "net"
	fqdn := func(name string, passthrough bool, network *string, backend string) *provision.Workload {
		wl := gwWorkload(t, 7, name, gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: name + ".example.org",
			GatewayBase: gridtypes.GatewayBase{TLSPassthrough: passthrough, Backends: []gridtypes.Backend{gridtypes.Backend(backend)}, Network: network}})
		wl.Deployment.Workloads = append(wl.Deployment.Workloads, netWL.Workload)
		return wl
	}
	mapped := "[::ffff:" + node.IP.String() + "]:9900"
	for _, tt := range []struct {
		name string
		wl   *provision.Workload
		want string
	}{
		{"node ip mapped", fqdn("a1", false, nil, "http://"+mapped), "node itself"},
		{"node ip mapped passthrough", fqdn("a2", true, nil, mapped), "node itself"},
		{"metadata", fqdn("a3", false, nil, "http://169.254.169.254"), "link-local"},
		{"farm router", fqdn("a4", false, nil, "http://"+netlab.LANGateway.String()), "farm LAN"},
		{"net: node ip", fqdn("b1", false, &netName, "http://"+net.JoinHostPort(node.IP.String(), "9900")), "node itself"},
		{"net: node side", fqdn("b2", false, &netName, "http://"+PublicGateway.String()+":9900"), "node"},
		{"net: farm router", fqdn("b3", true, &netName, netlab.LANGateway.String()+":80"), "farm LAN"},
		{"net: metadata", fqdn("b4", false, &netName, "http://169.254.169.254"), "link-local"},
	} {
		if _, err := gw.m.Provision(ctx, tt.wl); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want refused (%s)", tt.name, err, tt.want)
		}
	}

	if _, err := gw.m.Provision(ctx, fqdn("web", false, nil, "http://"+net.JoinHostPort(netlab.InternetHost.String(), "8081"))); err != nil {
		t.Fatal(err)
	}
	if body, _, err := gw.client("web.example.org"); err != nil || body != "internet backend" {
		t.Errorf("a backend on the internet: got %q, %v", body, err)
	}

	// Accepted while 198.51.100.7 is somewhere on the internet; then the
	// node gets that address and a service on it.
	later := netip.MustParseAddr("198.51.100.7")
	if _, err := gw.m.Provision(ctx, fqdn("later", false, nil, "http://"+net.JoinHostPort(later.String(), "9901"))); err != nil {
		t.Fatal(err)
	}
	if _, err := gw.m.Provision(ctx, fqdn("laterpt", true, nil, net.JoinHostPort(later.String(), "9901"))); err != nil {
		t.Fatal(err)
	}
	if err := rtnl.AddAddr(node.NS, "eth0", netip.PrefixFrom(later, 32)); err != nil {
		t.Fatal(err)
	}
	laterSvc := serveCounted(listenIn(t, node.NS, net.JoinHostPort(later.String(), "9901")), "node service")
	if body, _, err := gw.client("later.example.org"); err == nil {
		t.Errorf("a backend that became the node's: got %q, want a refusal", body)
	}
	_, _, _ = gw.client("laterpt.example.org")
	if n := laterSvc.n.Load() + nodeSvc.n.Load(); n != 0 {
		t.Errorf("connections to the node's services through the gateway: got %d, want 0", n)
	}
}
