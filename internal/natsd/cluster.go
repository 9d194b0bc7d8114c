package natsd

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterAuth secures the routes of a cluster: a server accepts a route
// only from a peer that presents Username and Password and, over TLS, a
// certificate chaining to Roots; it dials the other members with the same
// credentials and its own certificate, and refuses a peer whose
// certificate does not chain to Roots. Every member of a cluster holds the
// same ClusterAuth apart from its certificate. DeriveClusterAuth makes one
// from a secret the members share (the grid's system key); LoadPKI swaps
// in an operator's CA and certificate.
type ClusterAuth struct {
	// Username and Password are the route credentials.
	Username string
	Password string
	// Roots are the CAs a peer's route certificate must chain to.
	Roots *x509.CertPool
	// Certificate returns this server's route certificate. It is called
	// at every handshake, so that it may renew a short-lived one.
	Certificate func() (*tls.Certificate, error)
}

// HKDF labels of what DeriveClusterAuth derives: distinct, so that no
// derived value tells anything about another or about the secret.
const (
	labelRouteUsername = "zos natsd route username v1"
	labelRoutePassword = "zos natsd route password v1"
	labelClusterCA     = "zos natsd cluster ca v1"
)

const (
	// leafLifetime is how long a derived route certificate is valid; it
	// is renewed after half of it.
	leafLifetime = 24 * time.Hour
	// routeTLSTimeout bounds a route's TLS handshake.
	routeTLSTimeout = 5 * time.Second
)

// DeriveClusterAuth derives a cluster's route security from secret, the
// seed of a key every member holds (zgrid: the system key): the route
// credentials and an ed25519 cluster CA, each from HKDF-SHA256 with its own
// label. The server signs its own short-lived certificate with that CA
// (name is its common name, for logs) and renews it while it runs. The CA
// key stays in memory; nothing is written.
func DeriveClusterAuth(secret []byte, name string) (*ClusterAuth, error) {
	return deriveClusterAuth(secret, name, time.Now)
}

func deriveClusterAuth(secret []byte, name string, now func() time.Time) (*ClusterAuth, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("natsd: cluster secret of %d bytes: want at least 32", len(secret))
	}
	derive := func(label string, n int) ([]byte, error) {
		b, err := hkdf.Key(sha256.New, secret, nil, label, n)
		if err != nil {
			return nil, fmt.Errorf("deriving %q: %w", label, err)
		}
		return b, nil
	}
	user, err := derive(labelRouteUsername, 16)
	if err != nil {
		return nil, err
	}
	pass, err := derive(labelRoutePassword, 32)
	if err != nil {
		return nil, err
	}
	caSeed, err := derive(labelClusterCA, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	ca, err := newClusterCA(ed25519.NewKeyFromSeed(caSeed))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	leaves := &leafIssuer{ca: ca, name: name, now: now}
	// Sign our certificate now: a broken CA shows at start.
	if _, err := leaves.certificate(); err != nil {
		return nil, err
	}
	return &ClusterAuth{
		Username:    "route-" + hex.EncodeToString(user),
		Password:    hex.EncodeToString(pass),
		Roots:       roots,
		Certificate: leaves.certificate,
	}, nil
}

// LoadPKI replaces the CA and certificate of a with an operator's: caFile
// holds the PEM CA certificates peers must chain to, certFile and keyFile
// this server's route certificate (PEM, with its chain) and key. The
// certificate must chain to the CA now and allow server or client
// authentication; no host name is checked (route URLs are addresses). The
// credentials stay as they are.
func (a *ClusterAuth) LoadPKI(caFile, certFile, keyFile string) error {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return fmt.Errorf("reading cluster CA: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return fmt.Errorf("cluster CA %s: no PEM certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("loading cluster certificate: %w", err)
	}
	if err := verifyChain(roots, cert.Certificate, time.Now()); err != nil {
		return fmt.Errorf("cluster certificate %s: %w", certFile, err)
	}
	a.Roots = roots
	a.Certificate = func() (*tls.Certificate, error) { return &cert, nil }
	return nil
}

// check reports what is missing from a.
func (a *ClusterAuth) check() error {
	switch {
	case a.Username == "" || a.Password == "":
		return errors.New("natsd: cluster auth without route credentials")
	case a.Roots == nil:
		return errors.New("natsd: cluster auth without a CA")
	case a.Certificate == nil:
		return errors.New("natsd: cluster auth without a certificate")
	}
	return nil
}

// tlsConfig is the TLS of every route, accepted or dialled (nats-server
// uses Cluster.TLSConfig both ways): TLS 1.3, a certificate required from
// the peer and checked against Roots.
func (a *ClusterAuth) tlsConfig() *tls.Config {
	roots, getCert := a.Roots, a.Certificate
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return getCert()
		},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return getCert()
		},
		ClientAuth: tls.RequireAnyClientCert,
		// Route URLs are IP addresses and route certificates name no
		// host: instead of the host-name check, VerifyPeerCertificate
		// checks the peer's chain against the cluster's CA, on both ends.
		// (nats-server logs a warning about this setting.)
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(roots, raw, time.Now())
		},
		// A resumed session would skip VerifyPeerCertificate.
		SessionTicketsDisabled: true,
	}
}

// verifyChain checks that the DER chain raw (leaf first) chains to roots
// at now and allows server or client authentication.
func verifyChain(roots *x509.CertPool, raw [][]byte, now time.Time) error {
	if len(raw) == 0 {
		return errors.New("no route certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("parsing route certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return fmt.Errorf("route certificate %q: %w", certs[0].Subject.CommonName, err)
	}
	return nil
}

// clusterCA is a cluster's CA: its key and self-signed certificate.
type clusterCA struct {
	key  ed25519.PrivateKey
	cert *x509.Certificate
}

// newClusterCA makes the CA certificate of key. Everything in it comes
// from the key (and ed25519 signatures are deterministic), so every member
// makes the same certificate.
func newClusterCA(key ed25519.PrivateKey) (*clusterCA, error) {
	pub := key.Public().(ed25519.PublicKey)
	id := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(id[:16]),
		Subject:               pkix.Name{CommonName: "zgrid cluster CA " + hex.EncodeToString(id[:4])},
		NotBefore:             time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:              time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign,
		SubjectKeyId:          id[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("making the cluster CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the cluster CA: %w", err)
	}
	return &clusterCA{key: key, cert: cert}, nil
}

// leafIssuer keeps this server's route certificate, signed by the cluster
// CA with a fresh key, and renews it after half its lifetime.
type leafIssuer struct {
	ca   *clusterCA
	name string
	now  func() time.Time

	mu   sync.Mutex
	cert *tls.Certificate // guarded by mu
}

func (l *leafIssuer) certificate() (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.cert != nil && now.Before(l.cert.Leaf.NotAfter.Add(-leafLifetime/2)) {
		return l.cert, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a route key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: l.name},
		NotBefore:    now.Add(-5 * time.Minute), // peers' clocks differ a little
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.ca.cert, pub, l.ca.key)
	if err != nil {
		return nil, fmt.Errorf("signing the route certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing the route certificate: %w", err)
	}
	l.cert = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv, Leaf: leaf}
	return l.cert, nil
}

// checkCluster is Validate's part about the cluster: a route port off
// loopback needs ClusterAuth, which must be complete; with it, route URLs
// carry no credentials of their own.
func checkCluster(c Config) error {
	if c.ClusterAuth == nil {
		if c.ClusterPort != 0 && !isLoopback(c.Host) {
			return fmt.Errorf("natsd: a cluster port on %s needs route authentication and TLS (ClusterAuth)", c.Host)
		}
		return nil
	}
	if c.ClusterPort == 0 {
		return errors.New("natsd: cluster auth needs a cluster port")
	}
	if err := c.ClusterAuth.check(); err != nil {
		return err
	}
	for _, r := range c.Routes {
		if u, err := url.Parse(r); err == nil && u.User != nil {
			return fmt.Errorf("natsd: route %s: credentials come from the cluster auth, not the URL", u.Redacted())
		}
	}
	return nil
}

// isLoopback reports whether host (a listen address; empty means
// 127.0.0.1) only listens on loopback.
func isLoopback(host string) bool {
	if host == "" || strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clusterOptions are the route listener and the routes of cfg, host being
// the listen address: with ClusterAuth, routes require its credentials and
// TLS, and the route URLs we dial carry the credentials.
func clusterOptions(cfg Config, host string) (server.ClusterOpts, []*url.URL) {
	co := server.ClusterOpts{Name: cfg.ClusterName, Host: host, Port: cfg.ClusterPort}
	if co.Name == "" {
		co.Name = "zgrid"
	}
	routes := server.RoutesFromStr(strings.Join(cfg.Routes, ","))
	if a := cfg.ClusterAuth; a != nil {
		co.Username = a.Username
		co.Password = a.Password
		co.TLSConfig = a.tlsConfig()
		co.TLSTimeout = routeTLSTimeout.Seconds()
		for _, r := range routes {
			r.User = url.UserPassword(a.Username, a.Password)
		}
	}
	return co, routes
}
