// Package identity holds the ed25519 keys of twins and nodes: creation from a
// seed or a BIP-39 mnemonic, the versioned seed file, signing, verification,
// and the X25519 keys derived from them for end-to-end encryption. It is used
// by zosctl (user keys), the node (node key) and the relay.
package identity

import (
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"filippo.io/edwards25519"
	"github.com/cosmos/go-bip39"
)

// SeedSize is the length of an ed25519 seed.
const SeedSize = ed25519.SeedSize

// ErrBadKey is returned for keys, seeds and signatures of the wrong shape.
var ErrBadKey = errors.New("bad key")

// Key is an ed25519 key pair. The zero value is not usable.
type Key struct {
	priv     ed25519.PrivateKey
	mnemonic string // empty when the key was not made from a mnemonic
}

// FromSeed returns the key of a 32-byte seed.
func FromSeed(seed []byte) (Key, error) {
	if len(seed) != SeedSize {
		return Key{}, fmt.Errorf("%w: seed is %d bytes, want %d", ErrBadKey, len(seed), SeedSize)
	}
	return Key{priv: ed25519.NewKeyFromSeed(seed)}, nil
}

// FromHexSeed returns the key of a hex-encoded 32-byte seed (an optional 0x
// prefix is accepted).
func FromHexSeed(s string) (Key, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil {
		return Key{}, fmt.Errorf("%w: seed is not hex: %v", ErrBadKey, err)
	}
	return FromSeed(b)
}

// FromMnemonic returns the key of a BIP-39 mnemonic. The seed is derived the
// way substrate tools derive an ed25519 "mini secret": PBKDF2-SHA512 of the
// mnemonic's entropy with salt "mnemonic", 2048 rounds, first 32 bytes. The
// same words therefore give the same key as the original's tools.
func FromMnemonic(words string) (Key, error) {
	words = strings.Join(strings.Fields(words), " ")
	entropy, err := mnemonicEntropy(words)
	if err != nil {
		return Key{}, err
	}
	seed, err := pbkdf2.Key(sha512.New, string(entropy), []byte("mnemonic"), 2048, 64)
	if err != nil {
		return Key{}, fmt.Errorf("deriving seed: %w", err)
	}
	k, err := FromSeed(seed[:SeedSize])
	if err != nil {
		return Key{}, err
	}
	k.mnemonic = words
	return k, nil
}

// mnemonicEntropy returns the entropy bytes a valid mnemonic encodes: each
// word is 11 bits; the last 1/33 of the bits is the checksum.
func mnemonicEntropy(words string) ([]byte, error) {
	if !bip39.IsMnemonicValid(words) {
		return nil, fmt.Errorf("%w: invalid mnemonic (unknown word, wrong count or bad checksum)", ErrBadKey)
	}
	list := strings.Split(words, " ")
	totalBits := len(list) * 11
	entBits := totalBits - totalBits/33
	out := make([]byte, entBits/8)
	bit := 0
	for _, w := range list {
		idx := bip39.ReverseWordMap[w]
		for i := 10; i >= 0 && bit < entBits; i-- {
			if idx>>uint(i)&1 == 1 {
				out[bit/8] |= 1 << uint(7-bit%8)
			}
			bit++
		}
	}
	// The checksum is the first totalBits/33 bits of SHA-256(entropy).
	sum := sha256.Sum256(out)
	csBits := totalBits - entBits
	for i := 0; i < csBits; i++ {
		w := list[(entBits+i)/11]
		want := bip39.ReverseWordMap[w] >> uint(10-(entBits+i)%11) & 1
		if int(sum[i/8]>>uint(7-i%8)&1) != want {
			return nil, fmt.Errorf("%w: invalid mnemonic: bad checksum", ErrBadKey)
		}
	}
	return out, nil
}

// Generate returns a fresh random key.
func Generate() (Key, error) {
	seed := make([]byte, SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return Key{}, fmt.Errorf("reading random seed: %w", err)
	}
	return FromSeed(seed)
}

// GenerateMnemonic returns a fresh key made from a new 24-word mnemonic.
func GenerateMnemonic() (Key, error) {
	entropy, err := bip39.NewEntropy(256)
	if err != nil {
		return Key{}, fmt.Errorf("making entropy: %w", err)
	}
	words, err := bip39.NewMnemonic(entropy)
	if err != nil {
		return Key{}, fmt.Errorf("making mnemonic: %w", err)
	}
	return FromMnemonic(words)
}

// Seed returns the 32-byte seed.
func (k Key) Seed() []byte { return k.priv.Seed() }

// Mnemonic returns the words the key was made from, or "".
func (k Key) Mnemonic() string { return k.mnemonic }

// Public returns the public key.
func (k Key) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// PublicHex returns the public key in hex.
func (k Key) PublicHex() string { return hex.EncodeToString(k.Public()) }

// Private returns the ed25519 private key.
func (k Key) Private() ed25519.PrivateKey { return k.priv }

// Sign signs msg.
func (k Key) Sign(msg []byte) []byte { return ed25519.Sign(k.priv, msg) }

// Verify reports whether sig is a valid signature of msg by pub. Keys and
// signatures of the wrong length verify as false, never panic.
func Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, msg, sig)
}

// ParsePublic decodes a hex public key (optional 0x prefix).
func ParsePublic(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), "0x"))
	if err != nil {
		return nil, fmt.Errorf("%w: public key is not hex: %v", ErrBadKey, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes, want %d", ErrBadKey, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// X25519Private returns the X25519 private scalar that corresponds to this
// ed25519 key (RFC 8032 clamped SHA-512 of the seed), for key agreement.
func (k Key) X25519Private() []byte {
	h := sha512.Sum512(k.priv.Seed())
	s := make([]byte, 32)
	copy(s, h[:32])
	s[0] &= 248
	s[31] &= 127
	s[31] |= 64
	return s
}

// X25519Public converts an ed25519 public key to its X25519 (Montgomery)
// form, for key agreement with the holder of the ed25519 key.
func X25519Public(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key is %d bytes", ErrBadKey, len(pub))
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: not a curve point: %v", ErrBadKey, err)
	}
	return p.BytesMontgomery(), nil
}
