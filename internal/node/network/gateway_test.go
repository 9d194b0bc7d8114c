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
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/sys/netns"
)

type fakeRegistry struct{ names map[string]uint32 }

func (f fakeRegistry) NameOwner(_ context.Context, name string) (uint32, error) {
	if t, ok := f.names[name]; ok {
		return t, nil
	}
	return 0, errors.New("no name contract")
}
func (f fakeRegistry) Domain(context.Context) (string, error) { return "gw.test", nil }

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

	// The gateway on the node's LAN address.
	certs := &gateway.SelfSigned{}
	proxy := gateway.New(certs.GetCertificate, testLog(t))
	front := listenIn(t, l.Nodes[0].NS, net.JoinHostPort(l.Nodes[0].IP.String(), "443"))
	pctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- proxy.Serve(pctx, front) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	gm := gateway.NewManager(proxy, fakeRegistry{names: map[string]uint32{"app": 7, "theirs": 8}}, m,
		func() []netip.Addr { return []netip.Addr{l.Nodes[0].IP} })

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

	// A client on the internet.
	client := func(name string) (string, *x509Subject, error) {
		var body string
		var subj *x509Subject
		err := func() error {
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
			c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			resp, err := c.Get("https://" + name + "/")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			subj = &x509Subject{CN: resp.TLS.PeerCertificates[0].Subject.CommonName}
			return nil
		}()
		return body, subj, err
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
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}}}), "DNS label"},
		{"name in use", gwWorkload(t, 8, "app", gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: "secure.example.org",
			GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{"http://10.20.2.1:8080"}}}), "already served"},
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
