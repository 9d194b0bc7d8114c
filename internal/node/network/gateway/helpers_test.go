package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/testutil"
)

// serve runs p on a loopback port until the test ends.
func serve(t testing.TB, p *Proxy) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, p, ln)
	return ln
}

func serveOn(t testing.TB, p *Proxy, ln net.Listener) {
	t.Helper()
	testutil.Go(t, "serving the proxy", func(ctx context.Context) error { return p.Serve(ctx, ln) })
}

// backend serves "hello <host>" over HTTP on addr ("127.0.0.1:0" when
// empty) and counts the connections it accepted.
type backend struct {
	URL   string
	Addr  string
	conns countingListener
}

type countingListener struct {
	net.Listener
	mu sync.Mutex // guards n
	n  int
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.n++
		l.mu.Unlock()
	}
	return c, err
}

func (l *countingListener) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func newBackend(t testing.TB, addr string) *backend {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{Addr: ln.Addr().String()}
	b.URL = "http://" + b.Addr
	b.conns.Listener = ln
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.Host)
	})}
	// Every request dials: the dial-time checks are what is tested.
	srv.SetKeepAlivesEnabled(false)
	go func() { _ = srv.Serve(&b.conns) }()
	t.Cleanup(func() { srv.Close() })
	return b
}

// get requests https://name/ through the gateway at gw, from the local
// address from (zero: any), trusting roots (nil: anything).
func get(gw, name string, from netip.Addr, roots *x509.CertPool) (string, error) {
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: name}
	if roots != nil {
		cfg = &tls.Config{RootCAs: roots, ServerName: name}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			d := &net.Dialer{}
			if from.IsValid() {
				d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
			}
			return d.DialContext(ctx, network, gw)
		}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("https://" + name + "/")
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

// fakeRegistry holds name contracts and the node's domain as written.
type fakeRegistry struct {
	domain string
	names  map[string]uint32
}

func (f fakeRegistry) NameOwner(_ context.Context, name string) (uint32, error) {
	if t, ok := f.names[name]; ok {
		return t, nil
	}
	return 0, errors.New("no name contract")
}

func (f fakeRegistry) Domain(context.Context) (string, error) { return f.domain, nil }

// fakeNetworks dials in the test's namespace, as if inside the twin's
// network resource, and records the networks dialled through.
type fakeNetworks struct {
	mu   sync.Mutex // guards used
	used []string
}

func (f *fakeNetworks) Dialer(twin uint32, name string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		f.mu.Lock()
		f.used = append(f.used, name)
		f.mu.Unlock()
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}, nil
}

func gwWorkload(t testing.TB, twin uint32, name string, typ gridtypes.WorkloadType, data gridtypes.WorkloadData, others ...gridtypes.Workload) *provision.Workload {
	t.Helper()
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	wl := gridtypes.Workload{Name: name, Type: typ, Data: raw}
	d := &gridtypes.Deployment{TwinID: twin, ContractID: 2, Workloads: append([]gridtypes.Workload{wl}, others...)}
	return &provision.Workload{Workload: wl, ID: gridtypes.NewWorkloadID(twin, 2, name), Deployment: d}
}

func fqdnProxy(t testing.TB, twin uint32, wl, fqdn string, backends ...string) *provision.Workload {
	t.Helper()
	var bs []gridtypes.Backend
	for _, b := range backends {
		bs = append(bs, gridtypes.Backend(b))
	}
	return gwWorkload(t, twin, wl, gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{FQDN: fqdn,
		GatewayBase: gridtypes.GatewayBase{Backends: bs}})
}

// addrs is a mutable list of addresses (the node's own).
type addrs struct {
	mu sync.Mutex // guards list
	l  []netip.Addr
}

func (a *addrs) get() []netip.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]netip.Addr(nil), a.l...)
}

func (a *addrs) add(x netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.l = append(a.l, x)
}
