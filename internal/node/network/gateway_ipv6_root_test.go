package network

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

// TestRootGatewayIPv6: on a node with SLAAC IPv6 (radvd), the gateway's
// front listens on IPv6 too (as the node does: [::] in its namespace) and
// serves a name from an IPv6 backend ("http://[2001:db8:ffff::1]:8082")
// and by passthrough ("[...]:port") to a client on the internet over IPv6;
// IPv6 backends naming the node, link-local, private (ULA) or in the
// farm LAN's /64 are refused.
func TestRootGatewayIPv6(t *testing.T) {
	tl := newLab6(t, true)
	l, ctx := tl.lab, context.Background()
	var nodeAddr netip.Addr
	testutil.Eventually(t, 30*time.Second, "the node's SLAAC address", func() (bool, error) {
		a, err := tl.m.Addr6()
		nodeAddr = a
		return err == nil, nil
	})

	proxy := gateway.New(gateway.Config{}, &gateway.SelfSigned{}, testutil.Logger(t))
	var front net.Listener
	if err := netns.Do(tl.node, func() (err error) { front, err = net.Listen("tcp6", "[::]:443"); return err }); err != nil {
		t.Fatal(err)
	}
	testutil.Go(t, "serving the proxy over IPv6", func(ctx context.Context) error { return proxy.Serve(ctx, front) })
	internetBackend := net.JoinHostPort(netlab.InternetHost6.String(), "8082")
	serveCounted(listenIn(t, l.Internet, internetBackend), "internet backend over IPv6")
	tlsBackend := net.JoinHostPort(netlab.InternetHost6.String(), "8443")
	backendCerts := &gateway.SelfSigned{}
	tlsLn := tls.NewListener(listenIn(t, l.Internet, tlsBackend), &tls.Config{GetCertificate: backendCerts.GetCertificate})
	go func() {
		_ = http.Serve(tlsLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "passthrough over IPv6") }))
	}()

	policy := gateway.BackendPolicy{
		// The lab's internet lives in documentation space, which the
		// node's egress refuses by default.
		Egress: egress.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("2001:db8:ffff::/48")},
			Own: func() []netip.Addr { return nsAddrs(tl.node) }},
		FarmLAN: func() []netip.Prefix { return []netip.Prefix{netlab.PublicLAN6} },
		NS:      tl.node,
	}
	gm := gateway.NewManager(gateway.ManagerConfig{Backends: policy}, proxy, fakeRegistry{names: map[string]uint32{"app6": 7}}, tl.m)
	fqdn := func(name string, passthrough bool, backend string) *provision.Workload {
		return gwWorkload(t, 7, name, gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: name + ".example.org",
			GatewayBase: gridtypes.GatewayBase{TLSPassthrough: passthrough, Backends: []gridtypes.Backend{gridtypes.Backend(backend)}}})
	}
	app := gwWorkload(t, 7, "app6", gridtypes.GatewayNameProxyType, &gridtypes.GatewayNameProxy{Name: "app6",
		GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{gridtypes.Backend("http://" + internetBackend)}}})
	for _, wl := range []*provision.Workload{app, fqdn("pt6", true, tlsBackend)} {
		if _, err := gm.Provision(ctx, wl); err != nil {
			t.Fatalf("%s: %v", wl.Name, err)
		}
		t.Cleanup(func() {
			if err := gm.Deprovision(ctx, wl); err != nil {
				t.Errorf("deprovisioning %s: %v", wl.Name, err)
			}
		})
	}

	client := func(name string) (string, error) {
		tr := &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: name},
			DialContext: func(ctx context.Context, network, _ string) (c net.Conn, err error) {
				err = netns.Do(l.Internet, func() error {
					c, err = (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(nodeAddr.String(), "443"))
					return err
				})
				return c, err
			},
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + name + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return string(b), errors.New(resp.Status)
		}
		return string(b), nil
	}
	if body, err := client("app6.gw.test"); err != nil || body != "internet backend over IPv6" {
		t.Errorf("name proxy to an IPv6 backend over IPv6: got %q, %v", body, err)
	}
	if body, err := client("pt6.example.org"); err != nil || body != "passthrough over IPv6" {
		t.Errorf("passthrough to an IPv6 backend over IPv6: got %q, %v", body, err)
	}

	for i, tt := range []struct {
		name, backend, want string
	}{
		{"the node's IPv6", "http://" + net.JoinHostPort(nodeAddr.String(), tenantPort), "node itself"},
		{"link-local", "http://[fe80::1]:80", "link-local"},
		{"unique local", "http://[fd99::1]:80", "private"},
		{"the farm LAN's /64", "http://" + net.JoinHostPort(netlab.PublicRouter6.String(), "80"), "farm LAN"},
	} {
		if _, err := gm.Provision(ctx, fqdn("bad"+strconv.Itoa(i), false, tt.backend)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want refused (%s)", tt.name, err, tt.want)
		}
	}
}
