// Package acmetest is a small ACME (RFC 8555) server for tests: accounts
// (one per key, as a CA keeps them), orders, tls-alpn-01 challenges that
// it really checks by connecting to the name's server with ALPN
// "acme-tls/1" against the ordering account's key, certificates signed by
// its own CA, and an optional per-account order limit standing for the
// CA's rate limits. JWS signatures are not verified: it is a test double.
// Only tests import it.
package acmetest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Server is a running test ACME server.
type Server struct {
	// Roots trusts the certificates the server issues.
	Roots *x509.CertPool

	srv    *httptest.Server
	caKey  *ecdsa.PrivateKey
	caCert *x509.Certificate
	dial   func(addr string, cfg *tls.Config) (*tls.Conn, error)
	addr   string // where names are served (host:port)

	mu         sync.Mutex // guards orders, nextID, accounts, kids, orderLimit
	orders     map[string]*order
	nextID     int
	accounts   map[string]*account // by key thumbprint
	kids       map[string]*account // by account URL
	orderLimit int
}

// Account is what the server counts of an account.
type Account struct {
	ID      int
	Orders  int // orders accepted
	Refused int // orders refused by the order limit
	Issued  int // certificates issued
}

type account struct {
	Account
	thumb string
}

type order struct {
	id     string
	acct   *account
	names  []string
	tokens map[string]string // name -> token
	valid  map[string]bool
	status string
	cert   []byte // PEM chain
}

// Start runs a server; challenges for every name are checked by
// connecting to addr with dial (nil: tls.Dial).
func Start(addr string, dial func(addr string, cfg *tls.Config) (*tls.Conn, error)) (*Server, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acmetest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(der)
	if dial == nil {
		dial = func(a string, c *tls.Config) (*tls.Conn, error) { return tls.Dial("tcp", a, c) }
	}
	s := &Server{Roots: x509.NewCertPool(), caKey: key, caCert: ca, dial: dial, addr: addr, orders: map[string]*order{},
		accounts: map[string]*account{}, kids: map[string]*account{}}
	s.Roots.AddCert(ca)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s, nil
}

// URL is the directory URL.
func (s *Server) URL() string { return s.srv.URL + "/dir" }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// SetOrderLimit makes the server refuse (rateLimited) the orders of an
// account past n (0: no limit), as a CA's per-account limits do.
func (s *Server) SetOrderLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orderLimit = n
}

// Accounts returns the accounts, in order of creation.
func (s *Server) Accounts() []Account {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Account, len(s.accounts))
	for _, a := range s.accounts {
		out[a.ID-1] = a.Account
	}
	return out
}

// Issued returns the number of certificates issued.
func (s *Server) Issued() int {
	n := 0
	for _, a := range s.Accounts() {
		n += a.Issued
	}
	return n
}

type jws struct {
	Protected string `json:"protected"`
	Payload   string `json:"payload"`
}

func b64(s string) []byte {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return b
}

func (s *Server) nonce(w http.ResponseWriter) {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	w.Header().Set("Replay-Nonce", base64.RawURLEncoding.EncodeToString(b))
	w.Header().Set("Cache-Control", "no-store")
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, detail string) {
	problemOf(w, http.StatusBadRequest, "malformed", detail)
}

func problemOf(w http.ResponseWriter, code int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"type": "urn:ietf:params:acme:error:" + typ, "detail": detail})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.nonce(w)
	base := s.srv.URL
	if r.URL.Path == "/dir" {
		reply(w, 200, map[string]string{"newNonce": base + "/nonce", "newAccount": base + "/acct", "newOrder": base + "/order",
			"revokeCert": base + "/revoke", "keyChange": base + "/key"})
		return
	}
	if r.URL.Path == "/nonce" {
		w.WriteHeader(http.StatusOK)
		return
	}
	var req jws
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		problem(w, "bad JWS")
		return
	}
	var prot struct {
		JWK json.RawMessage `json:"jwk"`
		KID string          `json:"kid"`
	}
	_ = json.Unmarshal(b64(req.Protected), &prot)
	payload := b64(req.Payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var acct *account
	if len(prot.JWK) > 0 {
		t, err := thumbprint(prot.JWK)
		if err != nil {
			problem(w, "bad JWK")
			return
		}
		acct = s.accounts[t]
		if parts[0] == "acct" && len(parts) == 1 {
			var nr struct {
				OnlyReturnExisting bool `json:"onlyReturnExisting"`
			}
			_ = json.Unmarshal(payload, &nr)
			code := http.StatusOK
			if acct == nil {
				if nr.OnlyReturnExisting {
					problemOf(w, http.StatusBadRequest, "accountDoesNotExist", "no account for this key")
					return
				}
				acct = &account{Account: Account{ID: len(s.accounts) + 1}, thumb: t}
				s.accounts[t] = acct
				s.kids[fmt.Sprintf("%s/acct/%d", base, acct.ID)] = acct
				code = http.StatusCreated
			}
			w.Header().Set("Location", fmt.Sprintf("%s/acct/%d", base, acct.ID))
			reply(w, code, map[string]any{"status": "valid", "orders": fmt.Sprintf("%s/orders/%d", base, acct.ID)})
			return
		}
	} else {
		acct = s.kids[prot.KID]
	}
	if acct == nil {
		problemOf(w, http.StatusUnauthorized, "unauthorized", "no such account")
		return
	}
	switch parts[0] {
	case "acct":
		reply(w, 200, map[string]any{"status": "valid", "orders": fmt.Sprintf("%s/orders/%d", base, acct.ID)})
	case "order":
		if len(parts) == 2 {
			o := s.orders[parts[1]]
			if o == nil {
				problem(w, "no such order")
				return
			}
			reply(w, 200, s.orderJSON(o))
			return
		}
		var nr struct {
			Identifiers []struct{ Value string } `json:"identifiers"`
		}
		_ = json.Unmarshal(payload, &nr)
		if s.orderLimit > 0 && acct.Orders >= s.orderLimit {
			acct.Refused++
			problemOf(w, http.StatusTooManyRequests, "rateLimited", "too many orders for this account")
			return
		}
		acct.Orders++
		s.nextID++
		o := &order{id: fmt.Sprint(s.nextID), acct: acct, tokens: map[string]string{}, valid: map[string]bool{}, status: "pending"}
		for _, id := range nr.Identifiers {
			o.names = append(o.names, id.Value)
			t := make([]byte, 16)
			_, _ = rand.Read(t)
			o.tokens[id.Value] = base64.RawURLEncoding.EncodeToString(t)
		}
		s.orders[o.id] = o
		w.Header().Set("Location", base+"/order/"+o.id)
		reply(w, 201, s.orderJSON(o))
	case "authz":
		o, name, ok := s.authz(parts)
		if !ok {
			problem(w, "no such authorization")
			return
		}
		reply(w, 200, s.authzJSON(o, name))
	case "chal":
		o, name, ok := s.authz(parts)
		if !ok {
			problem(w, "no such challenge")
			return
		}
		if !o.valid[name] {
			if err := s.check(name, o.tokens[name], o.acct.thumb); err != nil {
				problem(w, err.Error())
				return
			}
			o.valid[name] = true
			if len(o.valid) == len(o.names) {
				o.status = "ready"
			}
		}
		reply(w, 200, s.chalJSON(o, name))
	case "finalize":
		o := s.orders[parts[1]]
		var fr struct {
			CSR string `json:"csr"`
		}
		_ = json.Unmarshal(payload, &fr)
		csr, err := x509.ParseCertificateRequest(b64(fr.CSR))
		if o == nil || o.status != "ready" || err != nil {
			problem(w, "order not ready or bad CSR")
			return
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(100 + s.nextID)), Subject: pkix.Name{CommonName: o.names[0]},
			DNSNames: o.names, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, s.caCert, csr.PublicKey, s.caKey)
		if err != nil {
			problem(w, err.Error())
			return
		}
		o.cert = append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.caCert.Raw})...)
		o.status = "valid"
		o.acct.Issued++
		w.Header().Set("Location", base+"/order/"+o.id)
		reply(w, 200, s.orderJSON(o))
	case "cert":
		o := s.orders[parts[1]]
		if o == nil || o.cert == nil {
			problem(w, "no certificate")
			return
		}
		w.Header().Set("Content-Type", "application/pem-certificate-chain")
		_, _ = w.Write(o.cert)
	default:
		problem(w, "unknown resource "+r.URL.Path)
	}
}

func (s *Server) authz(parts []string) (*order, string, bool) {
	if len(parts) != 3 {
		return nil, "", false
	}
	o := s.orders[parts[1]]
	if o == nil {
		return nil, "", false
	}
	for _, n := range o.names {
		if n == parts[2] {
			return o, n, true
		}
	}
	return nil, "", false
}

func (s *Server) orderJSON(o *order) map[string]any {
	base := s.srv.URL
	var ids []map[string]string
	var authz []string
	for _, n := range o.names {
		ids = append(ids, map[string]string{"type": "dns", "value": n})
		authz = append(authz, base+"/authz/"+o.id+"/"+n)
	}
	m := map[string]any{"status": o.status, "identifiers": ids, "authorizations": authz, "finalize": base + "/finalize/" + o.id,
		"expires": time.Now().Add(time.Hour).Format(time.RFC3339)}
	if o.cert != nil {
		m["certificate"] = base + "/cert/" + o.id
	}
	return m
}

func (s *Server) chalJSON(o *order, name string) map[string]any {
	st := "pending"
	if o.valid[name] {
		st = "valid"
	}
	return map[string]any{"type": "tls-alpn-01", "url": s.srv.URL + "/chal/" + o.id + "/" + name, "token": o.tokens[name], "status": st}
}

func (s *Server) authzJSON(o *order, name string) map[string]any {
	st := "pending"
	if o.valid[name] {
		st = "valid"
	}
	return map[string]any{"status": st, "identifier": map[string]string{"type": "dns", "value": name},
		"challenges": []any{s.chalJSON(o, name)}, "expires": time.Now().Add(time.Hour).Format(time.RFC3339)}
}

// idPeAcmeIdentifier is the OID of the tls-alpn-01 certificate extension.
var idPeAcmeIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// check connects to the server of name with ALPN acme-tls/1 and checks
// the certificate carries sha256(keyAuthorization) (RFC 8737).
func (s *Server) check(name, token, thumb string) error {
	sum := sha256.Sum256([]byte(token + "." + thumb))
	c, err := s.dial(s.addr, &tls.Config{ServerName: name, NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true})
	if err != nil {
		return fmt.Errorf("tls-alpn-01 for %s: %w", name, err)
	}
	defer c.Close()
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return fmt.Errorf("tls-alpn-01 for %s: no certificate", name)
	}
	for _, e := range certs[0].Extensions {
		if e.Id.Equal(idPeAcmeIdentifier) {
			var v []byte
			if _, err := asn1.Unmarshal(e.Value, &v); err == nil && string(v) == string(sum[:]) {
				return nil
			}
		}
	}
	return fmt.Errorf("tls-alpn-01 for %s: the certificate does not answer the challenge", name)
}

// thumbprint is the RFC 7638 thumbprint of a JWK (EC or RSA).
func thumbprint(jwk json.RawMessage) (string, error) {
	var k struct {
		Crv, Kty, X, Y, E, N string
	}
	if err := json.Unmarshal(jwk, &k); err != nil {
		return "", err
	}
	var s string
	if k.Kty == "EC" {
		s = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Crv, k.X, k.Y)
	} else {
		s = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, k.E, k.N)
	}
	h := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(h[:]), nil
}
