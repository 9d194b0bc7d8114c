package flist

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/golang/snappy"
	"golang.org/x/crypto/blake2b"
)

// HashSize is the size of block ids and keys.
const HashSize = 32

// MaxBlockSize bounds the plain size of one block when reading: a block that
// claims to decompress to more is corrupt.
const MaxBlockSize = 8 << 20

// ErrCorrupt marks data that does not match its hash (a block whose id or key
// is wrong, a cached block gone bad).
var ErrCorrupt = errors.New("corrupt block")

// BlockRef names one block of a file: ID is where the store keeps it, Key
// decrypts it and checks the plain bytes.
type BlockRef struct {
	ID  [HashSize]byte
	Key [HashSize]byte
}

// String is the hex id, for logs and errors.
func (b BlockRef) String() string { return hex.EncodeToString(b.ID[:]) }

// SealBlock compresses and encrypts plain, returning its reference and the
// bytes to store.
func SealBlock(plain []byte) (BlockRef, []byte, error) {
	var ref BlockRef
	ref.Key = blake2b.Sum256(plain)
	aead, err := newAEAD(ref.Key)
	if err != nil {
		return ref, nil, err
	}
	comp := snappy.Encode(nil, plain)
	data := aead.Seal(nil, ref.Key[:aead.NonceSize()], comp, nil)
	ref.ID = blake2b.Sum256(data)
	return ref, data, nil
}

// OpenBlock checks data against ref.ID, decrypts and decompresses it and
// checks the plain bytes against ref.Key. Any mismatch is ErrCorrupt.
func OpenBlock(ref BlockRef, data []byte) ([]byte, error) {
	if blake2b.Sum256(data) != ref.ID {
		return nil, fmt.Errorf("block %s: %w: id mismatch", ref, ErrCorrupt)
	}
	aead, err := newAEAD(ref.Key)
	if err != nil {
		return nil, err
	}
	comp, err := aead.Open(nil, ref.Key[:aead.NonceSize()], data, nil)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w: decrypting: %v", ref, ErrCorrupt, err)
	}
	n, err := snappy.DecodedLen(comp)
	if err != nil || n > MaxBlockSize {
		return nil, fmt.Errorf("block %s: %w: bad compressed length", ref, ErrCorrupt)
	}
	plain, err := snappy.Decode(make([]byte, n), comp)
	if err != nil {
		return nil, fmt.Errorf("block %s: %w: decompressing: %v", ref, ErrCorrupt, err)
	}
	if blake2b.Sum256(plain) != ref.Key {
		return nil, fmt.Errorf("block %s: %w: key mismatch", ref, ErrCorrupt)
	}
	return plain, nil
}

// CheckID reports whether data is stored under id (stores and the hub check
// uploads with it).
func CheckID(id [HashSize]byte, data []byte) bool { return blake2b.Sum256(data) == id }

func newAEAD(key [HashSize]byte) (cipher.AEAD, error) {
	c, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("making cipher: %w", err)
	}
	aead, err := cipher.NewGCM(c)
	if err != nil {
		return nil, fmt.Errorf("making gcm: %w", err)
	}
	return aead, nil
}

// ParseID decodes a hex block id.
func ParseID(s string) ([HashSize]byte, error) {
	var id [HashSize]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != HashSize {
		return id, fmt.Errorf("block id %q: want %d hex bytes", s, HashSize)
	}
	copy(id[:], b)
	return id, nil
}
