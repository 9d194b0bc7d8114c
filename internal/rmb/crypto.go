package rmb

import (
	"bytes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/zos-go/zos/internal/identity"
)

// End-to-end encryption. Both twins convert their ed25519 keys to X25519
// (identity.X25519Private / identity.X25519Public) and agree on a shared
// secret; the AEAD key is HKDF-SHA256(secret, salt = hkdfSalt, info = the
// two ed25519 public keys in byte order), so both directions use the same
// key. The AEAD is XChaCha20-Poly1305 with a fresh random 24-byte nonce per
// message (random nonces of that size do not collide in practice); the
// sealed payload is nonce || ciphertext and the envelope header is the
// associated data.
const hkdfSalt = "zos-rmb/v1 e2e"

// SealOverhead is what sealing adds to a payload.
const SealOverhead = chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead

func x25519Private(k identity.Key) (*ecdh.PrivateKey, error) {
	p, err := ecdh.X25519().NewPrivateKey(k.X25519Private())
	if err != nil {
		return nil, fmt.Errorf("converting key to x25519: %w", err)
	}
	return p, nil
}

// deriveAEAD returns the AEAD shared by self and the holder of peer.
func deriveAEAD(priv *ecdh.PrivateKey, self, peer ed25519.PublicKey) (cipher.AEAD, error) {
	xp, err := identity.X25519Public(peer)
	if err != nil {
		return nil, fmt.Errorf("converting peer key: %w", err)
	}
	pk, err := ecdh.X25519().NewPublicKey(xp)
	if err != nil {
		return nil, fmt.Errorf("converting peer key: %w", err)
	}
	shared, err := priv.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("agreeing on a key: %w", err)
	}
	a, b := self, peer
	if bytes.Compare(a, b) > 0 {
		a, b = b, a
	}
	info := make([]byte, 0, len(a)+len(b))
	info = append(append(info, a...), b...)
	key, err := hkdf.Key(sha256.New, shared, []byte(hkdfSalt), string(info), chacha20poly1305.KeySize)
	if err != nil {
		return nil, fmt.Errorf("deriving key: %w", err)
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, fmt.Errorf("making aead: %w", err)
	}
	return aead, nil
}

func seal(aead cipher.AEAD, ad, plain []byte) ([]byte, error) {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return nil, fmt.Errorf("reading nonce: %w", err)
	}
	return aead.Seal(out, out, plain, ad), nil
}

func open(aead cipher.AEAD, ad, sealed []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("%w: sealed payload of %d bytes is too short", ErrMalformed, len(sealed))
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, fmt.Errorf("%w: payload does not decrypt", ErrUnauthorized)
	}
	return plain, nil
}
