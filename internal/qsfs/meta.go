package qsfs

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrWrongKey is metadata that does not decrypt with the configured keys.
var ErrWrongKey = errors.New("metadata does not decrypt with the configured key")

// recordMagic starts every metadata record.
var recordMagic = [4]byte{'Q', 'S', 'M', '1'}

// maxRecord bounds a metadata record (a 0-db value).
const maxRecord = maxShardValue

// objectMeta is what the meta backends hold for one object: its newest
// version and where each shard of each chunk is. Deleted marks a
// tombstone, so that a backend that missed a delete cannot bring the
// object back.
type objectMeta struct {
	Name        string      `json:"name"`
	Version     uint64      `json:"version"`      // of the record: the newest wins
	DataVersion uint64      `json:"data_version"` // of the data: bound into each chunk's authentication
	Deleted     bool        `json:"deleted,omitempty"`
	Size        int64       `json:"size"`
	Compression string      `json:"compression"`
	Minimal     int         `json:"minimal"`
	Total       int         `json:"total"`
	Chunks      []chunkMeta `json:"chunks"`
}

// chunkMeta is one chunk: plain size, sealed (encrypted) size, nonce, and
// its shards in order (shard i is Shards[i]).
type chunkMeta struct {
	Size      int         `json:"size"`
	SealedLen int         `json:"sealed"`
	Nonce     []byte      `json:"nonce"`
	Shards    []shardMeta `json:"shards"`
}

// shardMeta locates one shard: the backend's ID (address/namespace), the
// key in it, and the SHA-256 of the shard's payload.
type shardMeta struct {
	Backend string `json:"backend"`
	Key     string `json:"key"`
	Sum     []byte `json:"sum"`
}

// validate checks a decoded record for what readers rely on.
func (m *objectMeta) validate(name string) error {
	if m.Name != name {
		return fmt.Errorf("record names %q, want %q", m.Name, name)
	}
	if m.Deleted {
		if m.Size != 0 || len(m.Chunks) != 0 {
			return errors.New("tombstone with chunks")
		}
		return nil
	}
	switch m.Compression {
	case CompressionSnappy, CompressionZstd, CompressionNone:
	default:
		return fmt.Errorf("compression %q", m.Compression)
	}
	if m.Minimal < 1 || m.Total <= m.Minimal || m.Total > 255 {
		return fmt.Errorf("shards %d of %d", m.Minimal, m.Total)
	}
	var size int64
	for i, c := range m.Chunks {
		if c.Size < 0 || c.Size > maxChunkSize || c.SealedLen < 0 || c.SealedLen > maxShardValue*m.Minimal {
			return fmt.Errorf("chunk %d: sizes %d/%d", i, c.Size, c.SealedLen)
		}
		if len(c.Nonce) != 12 {
			return fmt.Errorf("chunk %d: nonce of %d bytes", i, len(c.Nonce))
		}
		if len(c.Shards) != m.Total {
			return fmt.Errorf("chunk %d: %d shards, want %d", i, len(c.Shards), m.Total)
		}
		for j, s := range c.Shards {
			if len(s.Sum) != 32 || s.Key == "" || len(s.Key) > 255 || s.Backend == "" {
				return fmt.Errorf("chunk %d shard %d: bad location", i, j)
			}
		}
		size += int64(c.Size)
	}
	if size != m.Size {
		return fmt.Errorf("chunks add up to %d bytes, record says %d", size, m.Size)
	}
	return nil
}

// recordAAD binds a record to its prefix and key.
func recordAAD(prefix, key string) []byte {
	return []byte("qsfs-meta\x00" + prefix + "\x00" + key)
}

// sealRecord encrypts v (JSON) under the meta key.
func sealRecord(aead cipher.AEAD, prefix, key string, v any) ([]byte, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding record: %w", err)
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("drawing nonce: %w", err)
	}
	out := append(recordMagic[:len(recordMagic):len(recordMagic)], nonce...)
	out = aead.Seal(out, nonce, plain, recordAAD(prefix, key))
	if len(out) > maxRecord {
		return nil, fmt.Errorf("record of %d bytes is more than a 0-db value (%d)", len(out), maxRecord)
	}
	return out, nil
}

// openRecord checks and decrypts a record; ErrWrongKey when it does not
// authenticate (a wrong key, or bytes changed), ErrCorrupt when it is not a
// record at all.
func openRecord(aead cipher.AEAD, prefix, key string, blob []byte) ([]byte, error) {
	ns := aead.NonceSize()
	if len(blob) < len(recordMagic)+ns+aead.Overhead() || !bytes.Equal(blob[:4], recordMagic[:]) {
		return nil, fmt.Errorf("%w: not a metadata record", ErrCorrupt)
	}
	if len(blob) > maxRecord {
		return nil, fmt.Errorf("%w: record of %d bytes", ErrCorrupt, len(blob))
	}
	plain, err := aead.Open(nil, blob[4:4+ns], blob[4+ns:], recordAAD(prefix, key))
	if err != nil {
		return nil, ErrWrongKey
	}
	return plain, nil
}

// decodeObject opens and validates an object record stored under key for
// the object name.
func decodeObject(aead cipher.AEAD, prefix, key, name string, blob []byte) (objectMeta, error) {
	plain, err := openRecord(aead, prefix, key, blob)
	if err != nil {
		return objectMeta{}, err
	}
	return parseObject(plain, name)
}

// parseObject decodes and validates the plain JSON of an object record.
func parseObject(plain []byte, name string) (objectMeta, error) {
	var m objectMeta
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return objectMeta{}, fmt.Errorf("%w: decoding record: %v", ErrCorrupt, err)
	}
	if err := m.validate(name); err != nil {
		return objectMeta{}, fmt.Errorf("%w: record of %q: %v", ErrCorrupt, name, err)
	}
	return m, nil
}

// keyCheck is the record that proves the keys: it holds a value sealed
// with the data key, itself sealed with the meta key.
type keyCheck struct {
	Nonce  []byte `json:"nonce"`
	Sealed []byte `json:"sealed"`
}

var keyCheckPlain = []byte("qsfs key check v1")
