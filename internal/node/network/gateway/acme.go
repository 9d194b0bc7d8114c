package gateway

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/crypto/acme"

	"github.com/zos-go/zos/internal/atomicfile"
)

// ACMEConfig configures certificates from an ACME server.
type ACMEConfig struct {
	// Directory is the ACME directory URL.
	Directory string
	// CacheDir holds a directory per twin: its account key
	// (account.key) and its certificates (<name>.pem).
	CacheDir string
	// Email is the contact of every account ("": none).
	Email string
	// OrderBurst orders one twin may place at once (10), then one more
	// every OrderEvery (6 min). Renewals count.
	OrderBurst int
	OrderEvery time.Duration
	// RetryAfter is how long a name whose issuance failed is not tried
	// again (1 min).
	RetryAfter time.Duration
	// RenewBefore renews a certificate that long before it expires (30
	// days, at most a third of its lifetime), on a handshake for its name.
	RenewBefore time.Duration
	// IssueTimeout bounds one issuance (5 min).
	IssueTimeout time.Duration
	// HTTPClient talks to the ACME server (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

func (c ACMEConfig) withDefaults() ACMEConfig {
	if c.OrderBurst <= 0 {
		c.OrderBurst = 10
	}
	if c.OrderEvery <= 0 {
		c.OrderEvery = 6 * time.Minute
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Minute
	}
	if c.RenewBefore <= 0 {
		c.RenewBefore = 30 * 24 * time.Hour
	}
	if c.IssueTimeout <= 0 {
		c.IssueTimeout = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// ErrOrderLimit is returned when a twin has placed too many orders lately.
var ErrOrderLimit = errors.New("too many certificate orders for this twin: retry later")

// ACME gets certificates from an ACME server (TLS-ALPN-01, answered on the
// proxy's own port) for the names of the proxy's routes. Every twin has
// its own ACME account, so the CA's per-account limits (orders, failed
// validations, pending authorizations) that one tenant exhausts, for
// instance with many names that do not point at the node, are its own; a
// twin's orders are also limited here. A certificate is the twin's: it is
// never served for another twin's route of the same name, and Forget
// removes it, key included, from memory and disk when the route goes.
// Renewals happen on a handshake for a served name, so a name nobody
// serves any more is never renewed.
type ACME struct {
	cfg ACMEConfig
	log *slog.Logger

	ctx    context.Context // ends with Close: issuances stop
	cancel context.CancelFunc
	wg     sync.WaitGroup // issuances in flight

	regMu sync.Mutex // serialises account set-up

	mu      sync.Mutex // guards certs, tokens, clients, budgets and the certificate files
	certs   map[certKey]*certEntry
	tokens  map[certKey]*tls.Certificate // tls-alpn-01 answers in flight
	clients map[uint32]*acme.Client
	budgets map[uint32]*budget
}

var _ Certs = (*ACME)(nil)

type certKey struct {
	twin uint32
	name string
}

// certEntry is a twin's certificate of a name, or its issuance.
type certEntry struct {
	cert   *tls.Certificate // nil until obtained
	flight chan struct{}    // non-nil while obtaining; closed when done
	err    error            // of the last attempt
	failed time.Time        // of the last failed attempt
}

// budget is a token bucket of orders.
type budget struct {
	tokens float64
	at     time.Time
}

// NewACME returns certificates from the ACME server of cfg (its cache
// directory is made when first written). Files directly in the cache
// directory are the one shared account and the certificates of earlier
// versions: they are removed. Close stops its issuances.
func NewACME(cfg ACMEConfig, log *slog.Logger) *ACME {
	if ents, err := os.ReadDir(cfg.CacheDir); err == nil {
		for _, e := range ents {
			if e.Type().IsRegular() {
				if err := os.Remove(filepath.Join(cfg.CacheDir, e.Name())); err != nil {
					log.Warn("gateway_cert_remove", "file", e.Name(), "err", err)
				}
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &ACME{cfg: cfg.withDefaults(), log: log, ctx: ctx, cancel: cancel,
		certs: map[certKey]*certEntry{}, tokens: map[certKey]*tls.Certificate{},
		clients: map[uint32]*acme.Client{}, budgets: map[uint32]*budget{}}
}

// Close stops the issuances in flight and waits for them.
func (a *ACME) Close() error {
	a.cancel()
	a.wg.Wait()
	return nil
}

// wantsToken reports whether h is a CA's tls-alpn-01 validation.
func wantsToken(h *tls.ClientHelloInfo) bool {
	return len(h.SupportedProtos) == 1 && h.SupportedProtos[0] == acme.ALPNProto
}

// Certificate implements Certs: the twin's certificate of the name,
// obtained on the first handshake (which waits for it).
func (a *ACME) Certificate(h *tls.ClientHelloInfo, twin uint32) (*tls.Certificate, error) {
	name, err := Normalize(h.ServerName)
	if err != nil {
		return nil, err
	}
	k := certKey{twin, name}
	if wantsToken(h) {
		a.mu.Lock()
		c := a.tokens[k]
		a.mu.Unlock()
		if c == nil {
			return nil, fmt.Errorf("no tls-alpn-01 challenge in flight for %s", name)
		}
		return c, nil
	}
	now := a.cfg.Now()
	a.mu.Lock()
	e := a.certs[k]
	if e == nil {
		e = &certEntry{}
		a.certs[k] = e
	}
	if c := e.cert; c != nil && now.Before(c.Leaf.NotAfter) {
		if e.flight == nil && a.renewDue(c.Leaf, now) && now.Sub(e.failed) >= a.cfg.RetryAfter {
			a.start(k, e) // in the background: the current one serves meanwhile
		}
		a.mu.Unlock()
		return c, nil
	}
	if e.flight == nil {
		if !e.failed.IsZero() && now.Sub(e.failed) < a.cfg.RetryAfter {
			err := e.err
			a.mu.Unlock()
			return nil, err
		}
		a.start(k, e)
	}
	done := e.flight
	a.mu.Unlock()
	ctx := h.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for the certificate of %s: %w", name, ctx.Err())
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e.cert != nil {
		return e.cert, nil
	}
	return nil, e.err
}

// Forget implements Certs: the twin's certificate and key of name are
// removed from memory and disk.
func (a *ACME) Forget(twin uint32, name string) {
	n, err := Normalize(name)
	if err != nil {
		return
	}
	k := certKey{twin, n}
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.certs, k)
	delete(a.tokens, k)
	if err := os.Remove(a.certPath(k)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		a.log.Warn("gateway_cert_remove", "twin", twin, "name", n, "err", err)
	}
}

func (a *ACME) renewDue(leaf *x509.Certificate, now time.Time) bool {
	before := min(a.cfg.RenewBefore, leaf.NotAfter.Sub(leaf.NotBefore)/3)
	return !now.Before(leaf.NotAfter.Add(-before))
}

// start obtains e in the background; a.mu is held.
func (a *ACME) start(k certKey, e *certEntry) {
	e.flight = make(chan struct{})
	a.wg.Add(1)
	go a.obtain(k, e)
}

// obtain loads the certificate from disk or orders one, and records the
// outcome in e unless e was forgotten meanwhile.
func (a *ACME) obtain(k certKey, e *certEntry) {
	defer a.wg.Done()
	ctx, cancel := context.WithTimeout(a.ctx, a.cfg.IssueTimeout)
	defer cancel()
	now := a.cfg.Now()
	cert, err := a.load(k, now)
	fresh := false
	if err != nil || a.renewDue(cert.Leaf, now) {
		var issued *tls.Certificate
		if issued, err = a.issue(ctx, k); err == nil {
			cert, fresh = issued, true
		} else {
			a.log.Warn("gateway_cert_issue", "twin", k.twin, "name", k.name, "err", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	current := a.certs[k] == e
	if current && fresh {
		if werr := a.save(k, cert); werr != nil {
			a.log.Warn("gateway_cert_save", "twin", k.twin, "name", k.name, "err", werr)
		}
	}
	switch {
	case cert != nil && current:
		e.cert = cert
	case cert != nil:
		err = errors.New("its route was removed")
	}
	if err != nil {
		e.err, e.failed = fmt.Errorf("certificate of %s: %w", k.name, err), now
	} else {
		e.err, e.failed = nil, time.Time{}
	}
	close(e.flight)
	e.flight = nil
}

// allow takes one order from the twin's budget; a.mu is held.
func (a *ACME) allow(twin uint32, now time.Time) bool {
	b := a.budgets[twin]
	if b == nil {
		b = &budget{tokens: float64(a.cfg.OrderBurst), at: now}
		a.budgets[twin] = b
	}
	if now.After(b.at) {
		b.tokens = min(float64(a.cfg.OrderBurst), b.tokens+float64(now.Sub(b.at))/float64(a.cfg.OrderEvery))
		b.at = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// issue orders a certificate for k.name on k.twin's account.
func (a *ACME) issue(ctx context.Context, k certKey) (*tls.Certificate, error) {
	a.mu.Lock()
	ok := a.allow(k.twin, a.cfg.Now())
	a.mu.Unlock()
	if !ok {
		return nil, ErrOrderLimit
	}
	client, err := a.client(ctx, k.twin)
	if err != nil {
		return nil, err
	}
	o, err := client.AuthorizeOrder(ctx, acme.DomainIDs(k.name))
	if err != nil {
		return nil, fmt.Errorf("ordering: %w", err)
	}
	for _, u := range o.AuthzURLs {
		if err := a.authorize(ctx, client, k, u); err != nil {
			return nil, err
		}
	}
	if o, err = client.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("waiting for the order: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader,
		&x509.CertificateRequest{Subject: pkix.Name{CommonName: k.name}, DNSNames: []string{k.name}}, key)
	if err != nil {
		return nil, err
	}
	der, _, err := client.CreateOrderCert(ctx, o.FinalizeURL, csr, true)
	if err != nil {
		return nil, fmt.Errorf("finalizing the order: %w", err)
	}
	return certOf(k.name, der, key, a.cfg.Now())
}

// authorize answers the tls-alpn-01 challenge of one authorization.
func (a *ACME) authorize(ctx context.Context, client *acme.Client, k certKey, url string) error {
	z, err := client.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("reading the authorization: %w", err)
	}
	if z.Status == acme.StatusValid {
		return nil
	}
	var chal *acme.Challenge
	for _, c := range z.Challenges {
		if c.Type == "tls-alpn-01" {
			chal = c
		}
	}
	if chal == nil {
		return errors.New("the ACME server offers no tls-alpn-01 challenge")
	}
	tc, err := client.TLSALPN01ChallengeCert(chal.Token, k.name)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.tokens[k] = &tc
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.tokens, k)
		a.mu.Unlock()
	}()
	if _, err := client.Accept(ctx, chal); err != nil {
		return fmt.Errorf("accepting the challenge: %w", err)
	}
	if _, err := client.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("waiting for the authorization: %w", err)
	}
	return nil
}

// client returns the twin's ACME client, its account registered.
func (a *ACME) client(ctx context.Context, twin uint32) (*acme.Client, error) {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	a.mu.Lock()
	c := a.clients[twin]
	a.mu.Unlock()
	if c != nil {
		return c, nil
	}
	key, err := a.accountKey(twin)
	if err != nil {
		return nil, err
	}
	c = &acme.Client{Key: key, DirectoryURL: a.cfg.Directory, HTTPClient: a.cfg.HTTPClient, UserAgent: "zos-gateway"}
	acct := &acme.Account{}
	if a.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + a.cfg.Email}
	}
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("registering the ACME account of twin %d: %w", twin, err)
	}
	a.mu.Lock()
	a.clients[twin] = c
	a.mu.Unlock()
	return c, nil
}

func (a *ACME) twinDir(twin uint32) string {
	return filepath.Join(a.cfg.CacheDir, strconv.FormatUint(uint64(twin), 10))
}

// certPath is where k's key and chain are kept (names are normalised:
// no slash, no "..").
func (a *ACME) certPath(k certKey) string { return filepath.Join(a.twinDir(k.twin), k.name+".pem") }

// accountKey loads the twin's account key, or makes and saves one.
func (a *ACME) accountKey(twin uint32) (crypto.Signer, error) {
	p := filepath.Join(a.twinDir(twin), "account.key")
	if b, err := os.ReadFile(p); err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("reading %s: no PEM block", p)
		}
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		return k, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})); err != nil {
		return nil, fmt.Errorf("saving the account key of twin %d: %w", twin, err)
	}
	return k, nil
}

// load reads k's certificate from disk; it must still be valid.
func (a *ACME) load(k certKey, now time.Time) (*tls.Certificate, error) {
	b, err := os.ReadFile(a.certPath(k))
	if err != nil {
		return nil, err
	}
	var key crypto.Signer
	var der [][]byte
	for {
		var blk *pem.Block
		if blk, b = pem.Decode(b); blk == nil {
			break
		}
		switch blk.Type {
		case "EC PRIVATE KEY":
			if key, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
				return nil, err
			}
		case "CERTIFICATE":
			der = append(der, blk.Bytes)
		}
	}
	if key == nil {
		return nil, errors.New("no key")
	}
	return certOf(k.name, der, key, now)
}

// certOf checks a chain for name and key and makes the certificate.
func certOf(name string, der [][]byte, key crypto.Signer, now time.Time) (*tls.Certificate, error) {
	if len(der) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		return nil, err
	}
	if err := leaf.VerifyHostname(name); err != nil {
		return nil, err
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate of %s expired on %s", name, leaf.NotAfter)
	}
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, errors.New("the certificate does not match the key")
	}
	return &tls.Certificate{Certificate: der, PrivateKey: key, Leaf: leaf}, nil
}

// save writes k's key and chain; a.mu is held.
func (a *ACME) save(k certKey, c *tls.Certificate) error {
	ec, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return errors.New("not an ECDSA key")
	}
	der, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		return err
	}
	out := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	for _, d := range c.Certificate {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: d})...)
	}
	return writeFileAtomic(a.certPath(k), out)
}

// writeFileAtomic writes data to path (mode 0600, parents 0700): a temp
// file, synced, renamed, the directory synced.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data, 0o600)
}
