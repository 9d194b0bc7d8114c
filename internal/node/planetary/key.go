package planetary

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/yggdrasil-network/yggdrasil-go/src/address"
)

// KeyFile is the name of the node's yggdrasil key inside its data directory.
// The key decides the node's overlay address and /64, so it is kept across
// restarts.
const KeyFile = "planetary.key"

// LoadKey reads the node's ed25519 key from dir/planetary.key, creating it
// (mode 0600) on first use. A corrupt file is an error and is left as it is:
// replacing it would silently change the node's overlay address.
func LoadKey(dir string) (ed25519.PrivateKey, error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return parseKey(path, b)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read planetary key: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate planetary key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal planetary key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("planetary key dir: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("write planetary key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write planetary key: %w", err)
	}
	return key, nil
}

func parseKey(path string, b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("planetary key %s: not a PEM private key", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("planetary key %s: %w", path, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("planetary key %s: %T is not ed25519", path, k)
	}
	return key, nil
}

// certificate is the self-signed TLS certificate yggdrasil links present,
// as the yggdrasil daemon makes it (common name: the hex public key).
func certificate(key ed25519.PrivateKey) (*tls.Certificate, error) {
	pub := key.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: hex.EncodeToString(pub)},
		NotBefore:             time.Now(),
		NotAfter:              time.Date(9999, time.December, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, fmt.Errorf("planetary certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// Addresses are the overlay address (200::/8) and /64 (300::/8) that key
// gives its node, as the library computes them: known from the key file
// alone, whether the overlay runs or not.
func Addresses(key ed25519.PrivateKey) (netip.Addr, netip.Prefix) {
	pub := key.Public().(ed25519.PublicKey)
	addr := netip.AddrFrom16(*address.AddrForKey(pub))
	var b [16]byte
	copy(b[:], address.SubnetForKey(pub)[:])
	return addr, netip.PrefixFrom(netip.AddrFrom16(b), 64)
}
