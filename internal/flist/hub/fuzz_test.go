package hub

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

// Fuzz modes: how a fuzzed request is signed.
const (
	fuzzUnsigned = iota // only the fuzzed headers
	fuzzSigned          // signed by twin 7, then the fuzzed headers
	fuzzForged          // signed as twin 7 with twin 9's key, then the fuzzed headers
	fuzzModes
)

// FuzzHubHandler drives the hub's handler with fuzzed methods, paths,
// headers and bodies: it never panics, always answers, and a request not
// signed by a registered twin's own key never changes the hub's directory
// nor gets a write accepted.
func FuzzHubHandler(f *testing.F) {
	tw := newTwins(f)
	h := newTestHub(f, Config{MaxFlist: 1 << 20, MaxBlock: 1 << 20, MaxNoncesPerTwin: 1 << 24, MaxNonces: 1 << 24,
		ReleaseTwins: []uint32{7}}, tw)
	art := sha256.Sum256([]byte("zos"))
	artPath := "/api/release/targets/testing/v1/" + hex.EncodeToString(art[:]) + ".zos"
	fl := testFlist(f, "etc")
	ref, block, err := flist.SealBlock([]byte("block"))
	if err != nil {
		f.Fatal(err)
	}
	blockPath := "/api/v1/blocks/" + hex.EncodeToString(ref.ID[:])
	headers := "X-Zos-Twin: 7\nX-Zos-Time: 0\nX-Zos-Nonce: 00\nX-Zos-Content-Sha256: 00\nX-Zos-Signature: 00"
	for _, s := range []struct {
		method, path, headers string
		body                  []byte
	}{
		{"GET", "/api/flist", "", nil},
		{"PUT", "/api/flist/twin7/app.fl", "", fl},
		{"PUT", "/api/flist/shared/app.fl", "", fl},
		{"PUT", blockPath, "", block},
		{"PUT", "/api/flist/twin7/tags/latest", "", []byte(`{"target":"app.fl"}`)},
		{"GET", "/api/flist/twin7", "", nil},
		{"GET", "/api/flist/twin7/app.fl/light", "", nil},
		{"GET", "/api/flist/twin7/tags/latest", "", nil},
		{"GET", "/twin7/latest.md5", "Range: bytes=0-3", nil},
		{"HEAD", blockPath, "If-None-Match: *", nil},
		{"PUT", "/api/flist/twin7/x.fl", headers, []byte("body")},
		{"PUT", "/api/flist/../x.fl", "", fl},
		{"PUT", "/api/release/metadata/1.root.json", "", []byte(`{"signed":{"_type":"root","version":1}}`)},
		{"PUT", "/api/release/metadata/timestamp.json", "", []byte(`{"signed":{"_type":"timestamp","version":3}}`)},
		{"PUT", artPath, "", []byte("zos")},
		{"GET", "/api/release/metadata/timestamp.json", "", nil},
		{"GET", artPath, "Range: bytes=0-1", nil},
	} {
		for mode := range fuzzModes {
			f.Add(s.method, s.path, s.headers, s.body, uint8(mode))
		}
	}
	f.Fuzz(func(t *testing.T, method, path, headers string, body []byte, mode uint8) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		r, err := http.NewRequest(method, "http://hub"+path, bytes.NewReader(body))
		if err != nil {
			return
		}
		switch mode % fuzzModes {
		case fuzzSigned:
			err = flist.SignRequest(r, tw.signer(7), sha256.Sum256(body), time.Now())
		case fuzzForged:
			err = flist.SignRequest(r, flist.KeySigner{Twin: 7, Key: tw[9]}, sha256.Sum256(body), time.Now())
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				r.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		before := snapshot(t, h.cfg.Dir)
		w := httptest.NewRecorder()
		h.Handler().ServeHTTP(w, r)
		if w.Code < 100 || w.Code > 599 {
			t.Fatalf("%s %s: status %d", method, path, w.Code)
		}
		if mode%fuzzModes == fuzzSigned {
			return
		}
		if after := snapshot(t, h.cfg.Dir); after != before {
			t.Fatalf("%s %s (mode %d, headers %q) changed the hub's directory:\n%s\nwas\n%s", method, path, mode%fuzzModes, headers, after, before)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && w.Code/100 == 2 {
			t.Fatalf("%s %s (mode %d): accepted without a valid signature: %d %q", method, path, mode%fuzzModes, w.Code, w.Body.String())
		}
	})
}
