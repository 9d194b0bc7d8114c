package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/network/gateway/acmetest"
	"github.com/zos-go/zos/internal/testutil"
)

// acmeLab is a gateway taking its certificates from a test CA, whose
// tls-alpn-01 checks reach the gateway except for names under
// elsewhere.test (names that do not point at the node).
type acmeLab struct {
	p     *Proxy
	ca    *acmetest.Server
	certs *ACME
	cache string
	gw    string
	b     *backend
}

func newACMELab(t *testing.T, cfg ACMEConfig) *acmeLab {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := acmetest.Start(ln.Addr().String(), func(addr string, c *tls.Config) (*tls.Conn, error) {
		if strings.HasSuffix(c.ServerName, ".elsewhere.test") {
			return nil, errors.New("the name does not resolve to the gateway")
		}
		return tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, c)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	cfg.Directory = ca.URL()
	cfg.CacheDir = t.TempDir()
	certs := NewACME(cfg, testutil.Logger(t))
	t.Cleanup(func() { certs.Close() })
	l := &acmeLab{p: New(Config{}, certs, testutil.Logger(t)), ca: ca, certs: certs, cache: cfg.CacheDir, gw: ln.Addr().String(), b: newBackend(t, "")}
	serveOn(t, l.p, ln)
	return l
}

func (l *acmeLab) route(t *testing.T, wl string, twin uint32, name string) {
	t.Helper()
	if err := l.p.Set(wl, Route{FQDN: name, Backends: []string{l.b.URL}, Twin: twin}); err != nil {
		t.Fatal(err)
	}
}

// handshake returns the certificate the gateway presents for name to a
// client trusting only the test CA.
func (l *acmeLab) handshake(name string) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 20 * time.Second}, "tcp", l.gw, &tls.Config{ServerName: name, RootCAs: l.ca.Roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestACME: the proxy gets the certificate of a name it serves from an
// ACME server (tls-alpn-01 answered on its own port), and a client that
// trusts only that server's CA reaches the backend.
func TestACME(t *testing.T) {
	l := newACMELab(t, ACMEConfig{})
	l.route(t, "7-1-app", 7, "app.gw.test")
	for i := range 2 {
		body, err := get(l.gw, "app.gw.test", netip.Addr{}, l.ca.Roots)
		if err != nil || body != "hello app.gw.test" {
			t.Fatalf("request %d: got %q, %v", i, body, err)
		}
	}
	if got := l.ca.Issued(); got != 1 {
		t.Errorf("certificates issued: got %d, want 1 (then cached)", got)
	}
	if _, err := l.handshake("other.gw.test"); err == nil {
		t.Errorf("a name the gateway does not serve got a certificate")
	}
}

// TestACMEAccountPerTwin: a twin deploying names that do not point at the
// node exhausts the CA's limit of its own account, not that of every
// tenant: another twin still gets its certificate.
func TestACMEAccountPerTwin(t *testing.T) {
	l := newACMELab(t, ACMEConfig{OrderBurst: 100, IssueTimeout: 2 * time.Second})
	l.ca.SetOrderLimit(2)
	var wg sync.WaitGroup
	for i := range 4 {
		name := "x" + string(rune('a'+i)) + ".elsewhere.test"
		l.route(t, "8-1-x"+string(rune('a'+i)), 8, name)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.handshake(name); err == nil {
				t.Errorf("%s got a certificate", name)
			}
		}()
	}
	wg.Wait()
	l.route(t, "7-1-app", 7, "app.example.org")
	if _, err := l.handshake("app.example.org"); err != nil {
		t.Fatalf("twin 7's certificate: %v", err)
	}
	accts := l.ca.Accounts()
	if len(accts) != 2 {
		t.Fatalf("accounts: got %+v, want one per twin", accts)
	}
	issued, refused := 0, 0
	for _, a := range accts {
		issued += a.Issued
		refused += a.Refused
	}
	if issued != 1 || refused == 0 {
		t.Errorf("accounts: got %+v, want twin 8's refused by the CA and one certificate for twin 7", accts)
	}
}

// TestACMEOrderBudget: a twin's orders are also limited on the node, and
// a name whose issuance failed is not ordered again on every handshake.
func TestACMEOrderBudget(t *testing.T) {
	l := newACMELab(t, ACMEConfig{OrderBurst: 2, OrderEvery: time.Hour})
	for range 3 { // handshakes again and again
		for i := range 5 {
			name := "x" + string(rune('a'+i)) + ".elsewhere.test"
			l.route(t, "8-1-x"+string(rune('a'+i)), 8, name)
			if _, err := l.handshake(name); err == nil {
				t.Errorf("%s got a certificate", name)
			}
		}
	}
	accts := l.ca.Accounts()
	if len(accts) != 1 || accts[0].Orders+accts[0].Refused != 2 {
		t.Errorf("orders of twin 8: got %+v, want 2", accts)
	}
	l.route(t, "7-1-app", 7, "app.example.org")
	if _, err := l.handshake("app.example.org"); err != nil {
		t.Errorf("twin 7's certificate: %v", err)
	}
}

// TestACMEForget: when a name's route goes, its certificate and key leave
// the disk and memory; the name served again, by another twin or the
// same, gets a new certificate, never the old one.
func TestACMEForget(t *testing.T) {
	l := newACMELab(t, ACMEConfig{})
	l.route(t, "7-1-app", 7, "app.example.org")
	first, err := l.handshake("app.example.org")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(l.cache, "7", "app.example.org.pem")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("cached certificate: %v", err)
	}
	l.p.Delete("7-1-app")
	if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the route is gone, %s: got %v, want it removed", file, err)
	}
	for i, twin := range []uint32{9, 7} {
		l.route(t, "x-1-app", twin, "app.example.org")
		c, err := l.handshake("app.example.org")
		if err != nil {
			t.Fatal(err)
		}
		if c.SerialNumber.Cmp(first.SerialNumber) == 0 {
			t.Errorf("twin %d got the removed certificate", twin)
		}
		if got := l.ca.Issued(); got != i+2 {
			t.Errorf("issued: got %d, want %d", got, i+2)
		}
		l.p.Delete("x-1-app")
	}
	if got := len(l.ca.Accounts()); got != 2 {
		t.Errorf("accounts: got %d, want 2 (twins 7 and 9)", got)
	}
}

// TestACMELegacyCache: the shared account key and certificates an earlier
// version left in the cache are removed.
func TestACMELegacyCache(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"acme_account+key", "app.example.org"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("key"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "7"), 0o700); err != nil {
		t.Fatal(err)
	}
	a := NewACME(ACMEConfig{Directory: "http://127.0.0.1:1/dir", CacheDir: dir}, testutil.Logger(t))
	defer a.Close()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "7" {
		t.Errorf("cache after start: got %v, want only the twins' directories", names)
	}
}
