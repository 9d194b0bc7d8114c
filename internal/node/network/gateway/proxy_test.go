package gateway

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/network/gateway/acmetest"
)

// TestACME: the proxy gets the certificate of a name it serves from an
// ACME server (tls-alpn-01 answered on its own port), and a client that
// trusts only that server's CA reaches the backend.
func TestACME(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Host)
	}))
	defer backend.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := acmetest.Start(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	var certs func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	p := New(func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return certs(h) }, slog.New(slog.DiscardHandler))
	certs = ACME(ca.URL(), t.TempDir(), "", p)
	if err := p.Set("1-1-app", Route{FQDN: "app.gw.test", Backends: []string{backend.URL}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.Roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, ln.Addr().String())
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for i := range 2 {
		resp, err := c.Get("https://app.gw.test/")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "hello app.gw.test" {
			t.Errorf("request %d: got %q", i, b)
		}
		if iss := resp.TLS.PeerCertificates[0].Issuer.CommonName; iss != "acmetest CA" {
			t.Errorf("issuer: got %q", iss)
		}
	}
	if ca.Issued != 1 {
		t.Errorf("certificates issued: got %d, want 1 (then cached)", ca.Issued)
	}
	// A name the proxy does not serve gets no certificate.
	if _, err := c.Get("https://other.gw.test/"); err == nil {
		t.Errorf("unknown name: got %v", err)
	}
}
