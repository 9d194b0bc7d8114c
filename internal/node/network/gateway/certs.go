package gateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// ACME returns certificates from the ACME server at directory (TLS-ALPN-01
// on the proxy's own port), for names the proxy serves, cached in
// cacheDir.
func ACME(directory, cacheDir, email string, p *Proxy) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	m := &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Cache:  autocert.DirCache(cacheDir),
		Email:  email,
		Client: &acme.Client{DirectoryURL: directory},
		HostPolicy: func(_ context.Context, host string) error {
			if !p.Serves(host) {
				return fmt.Errorf("%s is not served by this gateway", host)
			}
			return nil
		},
	}
	return m.GetCertificate
}

// SelfSigned makes and caches a self-signed certificate per name: the
// explicit fallback when no ACME server is configured.
type SelfSigned struct {
	mu    sync.Mutex // guards certs
	certs map[string]*tls.Certificate
}

// GetCertificate implements tls.Config.GetCertificate.
func (s *SelfSigned) GetCertificate(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := strings.ToLower(h.ServerName)
	if name == "" {
		return nil, errors.New("no server name")
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
