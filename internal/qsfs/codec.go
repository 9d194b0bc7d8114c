package qsfs

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/reedsolomon"
)

// ErrCorrupt is a shard or chunk whose checksum or authentication fails.
var ErrCorrupt = errors.New("corrupt data")

// shardMagic starts every shard value.
var shardMagic = [4]byte{'Q', 'S', 'H', '1'}

// shardHeaderLen: magic(4) index(1) total(1) minimal(1) reserved(1) sha256(32).
const shardHeaderLen = 40

// codec turns chunks into shards and back. It is safe for concurrent use.
type codec struct {
	aead cipher.AEAD
	zenc *zstd.Encoder
	zdec *zstd.Decoder
}

func newCodec(key []byte) (*codec, error) {
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	zenc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, fmt.Errorf("creating zstd encoder: %w", err)
	}
	zdec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxChunkSize+1))
	if err != nil {
		return nil, fmt.Errorf("creating zstd decoder: %w", err)
	}
	return &codec{aead: aead, zenc: zenc, zdec: zdec}, nil
}

func (c *codec) close() {
	c.zenc.Close()
	c.zdec.Close()
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("key: must be 32 bytes, got %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// chunkAAD binds a sealed chunk to its object, version and position, so
// that no chunk can be swapped for another and still authenticate.
func chunkAAD(name string, version uint64, index int, plainLen int) []byte {
	b := make([]byte, 0, len(name)+24)
	b = append(b, "qsfs-chunk\x00"...)
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(index))
	b = binary.BigEndian.AppendUint32(b, uint32(plainLen))
	return b
}

// seal compresses and encrypts a chunk under a fresh random 96-bit nonce.
func (c *codec) seal(plain []byte, alg string, aad []byte) (sealed, nonce []byte, err error) {
	var z []byte
	switch alg {
	case CompressionSnappy:
		z = snappy.Encode(nil, plain)
	case CompressionZstd:
		z = c.zenc.EncodeAll(plain, nil)
	case CompressionNone:
		z = plain
	default:
		return nil, nil, fmt.Errorf("compression: unknown algorithm %q", alg)
	}
	nonce = make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, nil, fmt.Errorf("drawing nonce: %w", err)
	}
	return c.aead.Seal(nil, nonce, z, aad), nonce, nil
}

// open decrypts and decompresses a sealed chunk of plainLen bytes.
func (c *codec) open(sealed, nonce []byte, alg string, aad []byte, plainLen int) ([]byte, error) {
	if len(nonce) != c.aead.NonceSize() {
		return nil, fmt.Errorf("%w: nonce of %d bytes", ErrCorrupt, len(nonce))
	}
	z, err := c.aead.Open(nil, nonce, sealed, aad)
	if err != nil {
		return nil, fmt.Errorf("%w: chunk does not authenticate with the data key", ErrCorrupt)
	}
	var plain []byte
	switch alg {
	case CompressionSnappy:
		n, err := snappy.DecodedLen(z)
		if err != nil || n != plainLen {
			return nil, fmt.Errorf("%w: snappy chunk of %d bytes, want %d", ErrCorrupt, n, plainLen)
		}
		plain, err = snappy.Decode(nil, z)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	case CompressionZstd:
		plain, err = c.zdec.DecodeAll(z, make([]byte, 0, plainLen))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
	case CompressionNone:
		plain = z
	default:
		return nil, fmt.Errorf("compression: unknown algorithm %q", alg)
	}
	if len(plain) != plainLen {
		return nil, fmt.Errorf("%w: chunk of %d bytes, want %d", ErrCorrupt, len(plain), plainLen)
	}
	return plain, nil
}

// split erasure-codes sealed into total shard values (header included).
func split(sealed []byte, minimal, total int) ([][]byte, error) {
	enc, err := reedsolomon.New(minimal, total-minimal)
	if err != nil {
		return nil, fmt.Errorf("erasure coder %d+%d: %w", minimal, total-minimal, err)
	}
	if len(sealed) == 0 {
		sealed = []byte{0} // Split refuses empty input; the length in metadata trims it
	}
	shards, err := enc.Split(sealed)
	if err != nil {
		return nil, fmt.Errorf("splitting chunk: %w", err)
	}
	if err := enc.Encode(shards); err != nil {
		return nil, fmt.Errorf("encoding parity: %w", err)
	}
	out := make([][]byte, total)
	for i, s := range shards {
		out[i] = shardValue(s, i, total, minimal)
	}
	return out, nil
}

func shardValue(payload []byte, index, total, minimal int) []byte {
	sum := sha256.Sum256(payload)
	v := make([]byte, 0, shardHeaderLen+len(payload))
	v = append(v, shardMagic[:]...)
	v = append(v, byte(index), byte(total), byte(minimal), 0)
	v = append(v, sum[:]...)
	return append(v, payload...)
}

// checkShard verifies a shard value against its header and the checksum
// the metadata holds, and returns its payload.
func checkShard(v []byte, index, total, minimal int, sum []byte) ([]byte, error) {
	if len(v) < shardHeaderLen || !bytes.Equal(v[:4], shardMagic[:]) {
		return nil, fmt.Errorf("%w: shard %d has no shard header", ErrCorrupt, index)
	}
	if int(v[4]) != index || int(v[5]) != total || int(v[6]) != minimal {
		return nil, fmt.Errorf("%w: shard header says %d of %d (minimal %d), want %d of %d (minimal %d)",
			ErrCorrupt, v[4], v[5], v[6], index, total, minimal)
	}
	payload := v[shardHeaderLen:]
	got := sha256.Sum256(payload)
	if !bytes.Equal(got[:], v[8:40]) || !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: shard %d checksum mismatch", ErrCorrupt, index)
	}
	return payload, nil
}

// join rebuilds the sealed chunk from shard payloads (nil where missing or
// corrupt); at least minimal must be present.
func join(payloads [][]byte, minimal, total, sealedLen int) ([]byte, error) {
	enc, err := reedsolomon.New(minimal, total-minimal)
	if err != nil {
		return nil, fmt.Errorf("erasure coder %d+%d: %w", minimal, total-minimal, err)
	}
	if err := enc.ReconstructData(payloads); err != nil {
		return nil, fmt.Errorf("reconstructing chunk: %w", err)
	}
	var buf bytes.Buffer
	n := max(sealedLen, 1)
	if err := enc.Join(&buf, payloads, n); err != nil {
		return nil, fmt.Errorf("joining chunk: %w", err)
	}
	return buf.Bytes()[:sealedLen], nil
}

// rebuild fills every nil payload (data and parity) from the others.
func rebuild(payloads [][]byte, minimal, total int) error {
	enc, err := reedsolomon.New(minimal, total-minimal)
	if err != nil {
		return fmt.Errorf("erasure coder %d+%d: %w", minimal, total-minimal, err)
	}
	if err := enc.Reconstruct(payloads); err != nil {
		return fmt.Errorf("reconstructing shards: %w", err)
	}
	return nil
}
