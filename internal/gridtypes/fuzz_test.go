package gridtypes

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeValidateHash feeds arbitrary bytes through decode, validation,
// hashing, capacity and verification: none may panic.
func FuzzDecodeValidateHash(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"workloads":[{"type":"zmachine","data":{"network":{"interfaces":[{"ip":"1.2.3.4"}]}}}]}`))
	f.Add([]byte("version: 1\nworkloads: [{type: network, data: {ip_range: 10.0.0.0/16}}]\n"))
	getter := KeyGetterFunc(func(uint32) ([]byte, error) { return make([]byte, 32), nil })
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		_ = d.Valid()
		_ = d.Challenge(io.Discard)
		_, _ = d.Hash()
		_, _ = d.Capacity()
		_ = d.Verify(getter)
		_, _ = Upgrade(d, d.Clone())
	})
}
