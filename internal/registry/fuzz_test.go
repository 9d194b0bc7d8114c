package registry

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// FuzzSignedRequest feeds arbitrary bytes to the parsing and checking of a
// write: it must never panic, and only a real signature verifies.
func FuzzSignedRequest(f *testing.F) {
	k, err := identity.FromSeed(make([]byte, identity.SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := newSignedRequest(k, OpFarmCreate, farmCreateReq{Name: "f"}, time.Unix(0, 1))
	f.Add(good)
	f.Add([]byte(`{"op":"farm.create","key":"00","payload":{}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r signedRequest
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		pub, err := r.verify()
		if err == nil && len(pub) == 0 {
			t.Fatal("verified without a key")
		}
		var req NodeRegistration
		_ = decode(r.Payload, &req)
	})
}
