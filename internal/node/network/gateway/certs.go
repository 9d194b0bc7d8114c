package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// SelfSigned makes and caches a self-signed certificate per name: the
// explicit fallback when no ACME server is configured (see ACME).
type SelfSigned struct {
	mu    sync.Mutex // guards certs
	certs map[string]*tls.Certificate
}

var _ Certs = (*SelfSigned)(nil)

// Certificate implements Certs: every twin gets the same certificate for
// a name.
func (s *SelfSigned) Certificate(h *tls.ClientHelloInfo, _ uint32) (*tls.Certificate, error) {
	return s.GetCertificate(h)
}

// Forget implements Certs.
func (s *SelfSigned) Forget(_ uint32, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.certs, hostName(name))
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *SelfSigned) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hostName(h.ServerName)
	if name == "" {
		return nil, fmt.Errorf("no server name, or %q is not a domain name", h.ServerName)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.certs[name]; ok {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating a key for %s: %w", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(90 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("making a certificate for %s: %w", name, err)
	}
	c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	if s.certs == nil {
		s.certs = map[string]*tls.Certificate{}
	}
	s.certs[name] = c
	return c, nil
}
