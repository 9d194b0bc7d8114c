package qsfs

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeObject: the metadata decoder (record envelope, decryption,
// JSON and validation) never panics on any bytes, and what it accepts
// re-encodes to a record it accepts again, equal.
func FuzzDecodeObject(f *testing.F) {
	aead, err := newAEAD(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		f.Fatal(err)
	}
	const prefix, name = "p", "obj"
	key := prefix + "/o/" + name
	good := objectMeta{Name: name, Version: 3, DataVersion: 2, Size: 5, Compression: CompressionSnappy, Minimal: 2, Total: 3,
		Chunks: []chunkMeta{{Size: 5, SealedLen: 30, Nonce: make([]byte, 12), Shards: []shardMeta{
			{Backend: "a/ns", Key: "k.0", Sum: make([]byte, 32)},
			{Backend: "b/ns", Key: "k.1", Sum: make([]byte, 32)},
			{Backend: "c/ns", Key: "k.2", Sum: make([]byte, 32)},
		}}}}
	blob, err := sealRecord(aead, prefix, key, good)
	if err != nil {
		f.Fatal(err)
	}
	plain, _ := json.Marshal(good)
	f.Add(blob, false)
	f.Add(plain, true)
	f.Add([]byte(`{"name":"obj","deleted":true,"version":1}`), true)
	f.Add([]byte("QSM1"), false)
	f.Fuzz(func(t *testing.T, b []byte, isPlain bool) {
		var m objectMeta
		var err error
		if isPlain {
			m, err = parseObject(b, name)
		} else {
			m, err = decodeObject(aead, prefix, key, name, b)
		}
		if err != nil {
			return
		}
		again, err := sealRecord(aead, prefix, key, m)
		if err != nil {
			t.Fatalf("re-encoding an accepted record: %v", err)
		}
		m2, err := decodeObject(aead, prefix, key, name, again)
		if err != nil {
			t.Fatalf("decoding a re-encoded record: %v", err)
		}
		j1, _ := json.Marshal(m)
		j2, _ := json.Marshal(m2)
		if !bytes.Equal(j1, j2) {
			t.Fatalf("round trip: got %s, want %s", j2, j1)
		}
	})
}

// TestRecordTampering: a record with one byte flipped, moved to another
// object's key, or read with another key does not decode.
func TestRecordTampering(t *testing.T) {
	aead, _ := newAEAD(bytes.Repeat([]byte{1}, 32))
	other, _ := newAEAD(bytes.Repeat([]byte{2}, 32))
	m := objectMeta{Name: "a", Version: 1, Deleted: true}
	blob, err := sealRecord(aead, "p", "p/o/a", m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeObject(aead, "p", "p/o/a", "a", blob); err != nil {
		t.Fatalf("intact record: %v", err)
	}
	flipped := bytes.Clone(blob)
	flipped[len(flipped)/2] ^= 1
	for _, tt := range []struct {
		name string
		err  error
		f    func() error
	}{
		{"flipped byte", ErrWrongKey, func() error { _, err := decodeObject(aead, "p", "p/o/a", "a", flipped); return err }},
		{"other key name", ErrWrongKey, func() error { _, err := decodeObject(aead, "p", "p/o/b", "b", blob); return err }},
		{"other prefix", ErrWrongKey, func() error { _, err := decodeObject(aead, "q", "p/o/a", "a", blob); return err }},
		{"other meta key", ErrWrongKey, func() error { _, err := decodeObject(other, "p", "p/o/a", "a", blob); return err }},
		{"not a record", ErrCorrupt, func() error { _, err := decodeObject(aead, "p", "p/o/a", "a", []byte("hello")); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) { wantErr(t, tt.f(), tt.err) })
	}
}
