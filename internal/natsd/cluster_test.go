package natsd

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/testutil"
)

// secret returns a 32-byte cluster secret made of b.
func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestDeriveClusterAuth(t *testing.T) {
	a1, err := DeriveClusterAuth(secret(1), "a1")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := DeriveClusterAuth(secret(1), "a2")
	if err != nil {
		t.Fatal(err)
	}
	other, err := DeriveClusterAuth(secret(2), "other")
	if err != nil {
		t.Fatal(err)
	}
	if a1.Username != a2.Username || a1.Password != a2.Password {
		t.Fatalf("same secret: got credentials %s/%s and %s/%s, want equal", a1.Username, a1.Password, a2.Username, a2.Password)
	}
	if a1.Username == other.Username || a1.Password == other.Password {
		t.Fatal("different secrets derive the same credentials")
	}
	if strings.Contains(a1.Password, strings.TrimPrefix(a1.Username, "route-")) {
		t.Fatal("the password contains the username: labels not distinct")
	}
	leaf := func(a *ClusterAuth) [][]byte {
		c, err := a.Certificate()
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate
	}
	now := time.Now()
	tests := []struct {
		name  string
		roots *ClusterAuth
		leaf  [][]byte
		ok    bool
	}{
		{"own certificate", a1, leaf(a1), true},
		{"member with the same secret", a1, leaf(a2), true},
		{"member with the same secret, other way", a2, leaf(a1), true},
		{"another secret's certificate", a1, leaf(other), false},
		{"our certificate at another secret", other, leaf(a1), false},
		{"no certificate", a1, nil, false},
		{"garbage", a1, [][]byte{[]byte("not a certificate")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyChain(tt.roots.Roots, tt.leaf, now)
			if (err == nil) != tt.ok {
				t.Fatalf("verifyChain: got %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := DeriveClusterAuth(make([]byte, 16), "x"); err == nil {
		t.Fatal("a 16-byte secret: got no error")
	}
}

func TestRouteCertificateRenewal(t *testing.T) {
	t0 := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	a, err := deriveClusterAuth(secret(1), "n", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	first, err := a.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if life := first.Leaf.NotAfter.Sub(t0); life > 25*time.Hour {
		t.Fatalf("route certificate valid for %s: want a short-lived one", life)
	}
	now = t0.Add(11 * time.Hour)
	if c, _ := a.Certificate(); c != first {
		t.Fatal("renewed before half of its lifetime")
	}
	now = t0.Add(13 * time.Hour)
	second, err := a.Certificate()
	if err != nil {
		t.Fatal(err)
	}
	if second == first || second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("not renewed after half of its lifetime")
	}
	expired := t0.Add(25 * time.Hour)
	if err := verifyChain(a.Roots, first.Certificate, expired); err == nil {
		t.Fatal("an expired route certificate verifies")
	}
	if err := verifyChain(a.Roots, second.Certificate, expired); err != nil {
		t.Fatalf("renewed certificate: %v", err)
	}
}

func TestValidateRouteSecurity(t *testing.T) {
	auth, err := DeriveClusterAuth(secret(1), "v")
	if err != nil {
		t.Fatal(err)
	}
	noCA := *auth
	noCA.Roots = nil
	noPassword := *auth
	noPassword.Password = ""
	route := []string{"nats-route://10.0.0.2:6222"}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"loopback without auth", Config{ClusterPort: 6222}, true},
		{"127.0.0.1 without auth", Config{Host: "127.0.0.1", ClusterPort: 6222}, true},
		{"::1 without auth", Config{Host: "::1", ClusterPort: 6222}, true},
		{"any address without auth", Config{Host: "0.0.0.0", ClusterPort: 6222, Routes: route}, false},
		{"public address without auth", Config{Host: "203.0.113.7", ClusterPort: 6222}, false},
		{"host name without auth", Config{Host: "grid.example", ClusterPort: 6222}, false},
		{"any address with auth", Config{Host: "0.0.0.0", ClusterPort: 6222, Routes: route, ClusterAuth: auth}, true},
		{"no cluster port, any address", Config{Host: "0.0.0.0"}, true},
		{"auth without a cluster port", Config{ClusterAuth: auth}, false},
		{"auth without a CA", Config{Host: "0.0.0.0", ClusterPort: 6222, ClusterAuth: &noCA}, false},
		{"auth without a password", Config{Host: "0.0.0.0", ClusterPort: 6222, ClusterAuth: &noPassword}, false},
		{"route URL with credentials", Config{ClusterPort: 6222, ClusterAuth: auth,
			Routes: []string{"nats-route://u:p@10.0.0.2:6222"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.StoreDir = "/x"
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Fatalf("Validate: got %v, want ok=%v", err, tt.ok)
			}
		})
	}
	// Start refuses too: the check guards the API, not only zgrid's flags.
	_, err = Start(Config{StoreDir: t.TempDir(), Host: "0.0.0.0", Port: RandomPort, ClusterPort: RandomPort}, nil)
	if err == nil || !strings.Contains(err.Error(), "route authentication") {
		t.Fatalf("Start with an open route port on 0.0.0.0: got %v, want a refusal", err)
	}
}

func routeURL(port int) string { return fmt.Sprintf("nats-route://127.0.0.1:%d", port) }

// startMember starts a cluster member on loopback, shut down at cleanup.
func startMember(t *testing.T, name string, port int, routes []string, auth *ClusterAuth) *Server {
	t.Helper()
	s, err := Start(Config{StoreDir: t.TempDir(), Name: name, Port: RandomPort, ClusterName: "zgrid",
		ClusterPort: port, Routes: routes, ClusterAuth: auth}, nil)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// deriveAuth derives the route security of secret s for member name.
func deriveAuth(t *testing.T, s []byte, name string) *ClusterAuth {
	t.Helper()
	a, err := DeriveClusterAuth(s, name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// crossing publishes on pubURL every 100 ms for d and returns the first
// message a subscriber of everything (">") on subURL receives, or nil if
// none arrives. A new route takes a moment to carry interest, hence the
// repeated publishing.
func crossing(t *testing.T, pubURL, subURL string, d time.Duration) *nats.Msg {
	t.Helper()
	sc, err := nats.Connect(subURL)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	sub, err := sc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Flush(); err != nil {
		t.Fatal(err)
	}
	pc, err := nats.Connect(pubURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var got *nats.Msg
	_ = testutil.Poll(d, func() (bool, error) {
		if err := pc.Publish("grid.secret", []byte("grid traffic")); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(100 * time.Millisecond)
		if err != nil {
			return false, err
		}
		got = m
		return true, nil
	})
	return got
}

// assertJoined checks that messages cross between a and b both ways.
func assertJoined(t *testing.T, a, b string) {
	t.Helper()
	if m := crossing(t, a, b, 20*time.Second); m == nil {
		t.Fatalf("nothing published on %s reached %s: not one cluster", a, b)
	}
	if m := crossing(t, b, a, 20*time.Second); m == nil {
		t.Fatalf("nothing published on %s reached %s: not one cluster", b, a)
	}
}

// assertApart checks, for a few seconds each way, that nothing crosses
// between grid (our server) and intruder.
func assertApart(t *testing.T, grid, intruder string) {
	t.Helper()
	if m := crossing(t, grid, intruder, 3*time.Second); m != nil {
		t.Fatalf("an intruder's client received the grid's %q: %q", m.Subject, m.Data)
	}
	if m := crossing(t, intruder, grid, 3*time.Second); m != nil {
		t.Fatalf("the grid received an intruder's %q: %q", m.Subject, m.Data)
	}
}

// TestSecureClusterForms starts three members with the same secret: the
// routes authenticate, and the cluster carries messages and replicates a
// JetStream stream over three servers.
func TestSecureClusterForms(t *testing.T) {
	testutil.SkipShort(t, "cluster test")
	ports := testutil.FreePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, routeURL(p))
	}
	srvs := make([]*Server, 3)
	done := make(chan struct{}, 3)
	for i := range srvs {
		go func() {
			defer func() { done <- struct{}{} }()
			name := fmt.Sprintf("s%d", i)
			s, err := Start(Config{StoreDir: t.TempDir(), Name: name, Port: RandomPort, ClusterName: "zgrid",
				ClusterPort: ports[i], Routes: routes, ClusterAuth: deriveAuth(t, secret(1), name)}, nil)
			if err != nil {
				t.Errorf("starting %s: %v", name, err)
				return
			}
			srvs[i] = s
		}()
	}
	for range srvs {
		<-done
	}
	for _, s := range srvs {
		if s != nil {
			t.Cleanup(s.Shutdown)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	assertJoined(t, srvs[0].ClientURL(), srvs[2].ClientURL())
	nc, err := nats.Connect(srvs[1].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "creating a stream of 3 replicas", func() (bool, error) {
		_, err := js.AddStream(&nats.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		return err == nil, err
	})
	if _, err := js.Publish("r3.x", []byte("replicated")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "the stream to be replicated on 3 servers", func() (bool, error) {
		info, err := js.StreamInfo("R3")
		if err == nil && info.Cluster != nil && len(info.Cluster.Replicas) == 2 && info.State.Msgs == 1 {
			current := 0
			for _, r := range info.Cluster.Replicas {
				if r.Current {
					current++
				}
			}
			if current == 2 {
				t.Logf("replicas: leader %s, %+v", info.Cluster.Leader, info.Cluster.Replicas[0])
				return true, nil
			}
		}
		return false, fmt.Errorf("%+v, %v", info, err)
	})
}

// TestForeignRoutesCannotJoin has natsd servers route to a secured member:
// one with the same secret joins (the control), one with another secret
// (another CA and other credentials), one with our CA but a wrong password
// and one with our password but another CA do not.
func TestForeignRoutesCannotJoin(t *testing.T) {
	testutil.SkipShort(t, "cluster test")
	ours := secret(1)
	port := testutil.FreePort(t)
	grid := startMember(t, "grid", port, nil, deriveAuth(t, ours, "grid"))
	route := []string{routeURL(port)}

	foreign := deriveAuth(t, secret(2), "foreign")
	wrongPassword := deriveAuth(t, ours, "wrong-password")
	wrongPassword.Password = foreign.Password
	foreignCA := deriveAuth(t, ours, "foreign-ca")
	foreignCA.Roots, foreignCA.Certificate = foreign.Roots, foreign.Certificate

	tests := []struct {
		name string
		auth *ClusterAuth
		join bool
	}{
		{"another system key", foreign, false},
		{"our CA, wrong password", wrongPassword, false},
		{"our password, another CA", foreignCA, false},
		{"same system key (control)", deriveAuth(t, ours, "member"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startMember(t, strings.ReplaceAll(tt.name, " ", "-"), testutil.FreePort(t), route, tt.auth)
			if tt.join {
				assertJoined(t, grid.ClientURL(), s.ClientURL())
			} else {
				assertApart(t, grid.ClientURL(), s.ClientURL())
			}
			s.Shutdown()
		})
	}
}

// TestPlainRouteRefused speaks the route protocol in clear to a secured
// route port: the server answers nothing and closes. The control shows the
// same probe gets an INFO from an open (loopback, unsecured) route port.
func TestPlainRouteRefused(t *testing.T) {
	ports := testutil.FreePorts(t, 2)
	secured := startMember(t, "secured", ports[0], nil, deriveAuth(t, secret(1), "secured"))
	open := startMember(t, "open", ports[1], nil, nil)
	probe := func(addr string) string {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		_, _ = io.WriteString(c, `CONNECT {"verbose":false,"name":"rogue","cluster":"zgrid"}`+"\r\nPING\r\n")
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := probe(secured.ClusterAddr().String()); strings.Contains(got, "INFO") || strings.Contains(got, "PONG") {
		t.Fatalf("secured route port answered a plain route: %q", got)
	}
	if got := probe(open.ClusterAddr().String()); !strings.Contains(got, "INFO") {
		t.Fatalf("control: open route port answered %q, want an INFO", got)
	}
	// Plain and secured servers do not route to each other either.
	s := startMember(t, "plain", testutil.FreePort(t), []string{routeURL(ports[0])}, nil)
	assertApart(t, secured.ClientURL(), s.ClientURL())
}

// TestRouteCredentialsOnlyToOurCA has a member dial an impostor listening
// at one of its route URLs: with a certificate of another CA the TLS
// handshake fails and the impostor reads nothing, so the route credentials
// never leave. The control impostor, holding a certificate of our CA,
// does read the credentials.
func TestRouteCredentialsOnlyToOurCA(t *testing.T) {
	auth := deriveAuth(t, secret(1), "member")
	ours, err := deriveAuth(t, secret(1), "impostor").Certificate()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := deriveAuth(t, secret(2), "impostor").Certificate()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cert  *tls.Certificate
		reads bool
	}{
		{"certificate of another CA", theirs, false},
		{"certificate of our CA (control)", ours, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{*tt.cert},
				ClientAuth:   tls.RequireAnyClientCert,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan string, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- ""
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				n, _ := io.ReadAtLeast(c, buf, 1)
				got <- string(buf[:n])
			}()
			port := ln.Addr().(*net.TCPAddr).Port
			startMember(t, "member", testutil.FreePort(t), []string{routeURL(port)}, auth)
			read := <-got
			if tt.reads != strings.Contains(read, auth.Password) {
				t.Fatalf("impostor read %q: password there %v, want %v", read, !tt.reads, tt.reads)
			}
		})
	}
}

// TestOperatorPKI runs routes on an operator's CA: members with its
// certificates join; a member with the derived CA of the same key does not.
func TestOperatorPKI(t *testing.T) {
	testutil.SkipShort(t, "cluster test")
	dir := t.TempDir()
	caCert, caKey := makeCert(t, nil, nil, "operator CA", true)
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", caCert.Raw)
	pkiAuth := func(name string) *ClusterAuth {
		cert, key := makeCert(t, caCert, caKey, name, false)
		certFile, keyFile := filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
		writePEM(t, certFile, "CERTIFICATE", cert.Raw)
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		writePEM(t, keyFile, "PRIVATE KEY", der)
		a := deriveAuth(t, secret(1), name)
		if err := a.LoadPKI(filepath.Join(dir, "ca.pem"), certFile, keyFile); err != nil {
			t.Fatalf("LoadPKI: %v", err)
		}
		return a
	}
	ports := testutil.FreePorts(t, 3)
	a := startMember(t, "a", ports[0], nil, pkiAuth("a"))
	b := startMember(t, "b", ports[1], []string{routeURL(ports[0])}, pkiAuth("b"))
	assertJoined(t, a.ClientURL(), b.ClientURL())
	derived := startMember(t, "derived", ports[2], []string{routeURL(ports[0])}, deriveAuth(t, secret(1), "derived"))
	assertApart(t, a.ClientURL(), derived.ClientURL())

	// A certificate of another CA is refused when loading.
	otherCA, otherKey := makeCert(t, nil, nil, "other CA", true)
	cert, key := makeCert(t, otherCA, otherKey, "x", false)
	writePEM(t, filepath.Join(dir, "x.pem"), "CERTIFICATE", cert.Raw)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(dir, "x.key"), "PRIVATE KEY", der)
	if err := deriveAuth(t, secret(1), "x").LoadPKI(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "x.pem"), filepath.Join(dir, "x.key")); err == nil {
		t.Fatal("LoadPKI with a certificate of another CA: got no error")
	}
	if err := deriveAuth(t, secret(1), "x").LoadPKI(filepath.Join(dir, "x.key"), filepath.Join(dir, "x.pem"), filepath.Join(dir, "x.key")); err == nil {
		t.Fatal("LoadPKI with a key as CA: got no error")
	}
}

// makeCert makes an ECDSA certificate signed by parent (self-signed
// without one).
func makeCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, name string, ca bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
		tmpl.ExtKeyUsage = nil
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rogue is a Debian nats-server whose cluster block routes to a port of
// ours.
type rogue struct {
	client  string // nats:// URL of its clients
	monitor string // http://host:port of its monitoring
}

// startRogue starts Debian's nats-server with a route to route and the
// given extra lines in its cluster block.
func startRogue(t *testing.T, route, clusterExtra string) rogue {
	t.Helper()
	bin := testutil.RequireBinary(t, "nats-server")
	ports := testutil.FreePorts(t, 3)
	conf := fmt.Sprintf(`listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
cluster {
  name: zgrid
  listen: "127.0.0.1:%d"
  routes: [%q]
  %s
}
`, ports[0], ports[1], ports[2], route, clusterExtra)
	path := filepath.Join(t.TempDir(), "rogue.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	testutil.StartListening(t, addr, bin, "-c", path)
	return rogue{client: "nats://" + addr, monitor: fmt.Sprintf("http://127.0.0.1:%d", ports[1])}
}

// routes is the number of routes the rogue server has.
func (r rogue) routes(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(r.monitor + "/routez")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rz struct {
		NumRoutes int `json:"num_routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rz); err != nil {
		t.Fatal(err)
	}
	return rz.NumRoutes
}

// TestRogueNATSServerCannotJoin points Debian's nats-server at a secured
// route port, without credentials, with guessed ones, and with TLS and
// its own certificate: it gets no route, its anonymous client sees none of
// the grid's traffic and what it publishes reaches no grid subscriber. The
// control shows the same rogue does join an unsecured (loopback) server.
func TestRogueNATSServerCannotJoin(t *testing.T) {
	testutil.SkipShort(t, "cluster test")
	dir := t.TempDir()
	cert, key := makeCert(t, nil, nil, "rogue", false)
	writePEM(t, filepath.Join(dir, "rogue.pem"), "CERTIFICATE", cert.Raw)
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "rogue.key"), "EC PRIVATE KEY", der)
	rogueTLS := fmt.Sprintf(`tls { cert_file: %q, key_file: %q, insecure: true, timeout: 5 }`,
		filepath.Join(dir, "rogue.pem"), filepath.Join(dir, "rogue.key"))

	ports := testutil.FreePorts(t, 2)
	grid := startMember(t, "grid", ports[0], nil, deriveAuth(t, secret(1), "grid"))
	open := startMember(t, "open", ports[1], nil, nil)
	tests := []struct {
		name   string
		target *Server
		route  string
		extra  string
		join   bool
	}{
		{"anonymous", grid, routeURL(ports[0]), "", false},
		{"guessed credentials", grid, fmt.Sprintf("nats-route://route:zgrid@127.0.0.1:%d", ports[0]), "", false},
		{"guessed credentials over TLS", grid, fmt.Sprintf("nats-route://route-00:secret@127.0.0.1:%d", ports[0]), rogueTLS, false},
		{"unsecured server (control)", open, routeURL(ports[1]), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startRogue(t, tt.route, tt.extra)
			if tt.join {
				assertJoined(t, tt.target.ClientURL(), r.client)
				if n := r.routes(t); n == 0 {
					t.Fatal("control: rogue reports no route")
				}
				return
			}
			assertApart(t, tt.target.ClientURL(), r.client)
			if n := r.routes(t); n != 0 {
				t.Fatalf("rogue nats-server has %d routes, want 0", n)
			}
		})
	}
}
