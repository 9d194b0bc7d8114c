package mesh

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"golang.org/x/crypto/curve25519"
)

// GenerateKey returns a new base64 private key and its public key.
func GenerateKey() (priv, pub string, err error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", "", fmt.Errorf("generating a wireguard key: %w", err)
	}
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
	p, err := PublicKey(base64.StdEncoding.EncodeToString(k[:]))
	return base64.StdEncoding.EncodeToString(k[:]), p, err
}

// PublicKey returns the base64 public key of a base64 private key.
func PublicKey(priv string) (string, error) {
	k, err := ParseKey(priv)
	if err != nil {
		return "", err
	}
	pub, err := curve25519.X25519(k[:], curve25519.Basepoint)
	if err != nil {
		return "", fmt.Errorf("deriving a wireguard public key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(pub), nil
}

// ParseKey decodes a base64 WireGuard key.
func ParseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("invalid wireguard key %q", s)
	}
	copy(k[:], b)
	return k, nil
}

// PublicOf returns the public key of a raw private key (zero if it has
// none).
func PublicOf(priv [32]byte) [32]byte {
	var out [32]byte
	pub, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err == nil {
		copy(out[:], pub)
	}
	return out
}
