package hub

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
)

// TestReleaseWrites: only release twins publish; published versions are
// immutable, the timestamp only moves forward, an artifact must hash to
// its name, and anyone reads.
func TestReleaseWrites(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{ReleaseTwins: []uint32{1}}, tw)
	meta := func(role string, v int) []byte {
		return []byte(`{"signed":{"_type":"` + role + `","version":` + string(rune('0'+v)) + `},"signatures":[]}`)
	}
	art := []byte("zos v1")
	sum := sha256.Sum256(art)
	artPath := "/api/release/targets/testing/v1/" + hex.EncodeToString(sum[:]) + ".zos"
	tests := []struct {
		name   string
		twin   uint32
		path   string
		body   []byte
		status int
	}{
		{"non-manager refused", 2, "/api/release/metadata/1.root.json", meta("root", 1), http.StatusForbidden},
		{"root published", 1, "/api/release/metadata/1.root.json", meta("root", 1), http.StatusCreated},
		{"same root again is fine", 1, "/api/release/metadata/1.root.json", meta("root", 1), http.StatusOK},
		{"other root 1 refused", 1, "/api/release/metadata/1.root.json", []byte(`{"signed":{"_type":"root","version":1,"x":1}}`), http.StatusConflict},
		{"version not the name's", 1, "/api/release/metadata/2.targets.json", meta("targets", 3), http.StatusBadRequest},
		{"role not the name's", 1, "/api/release/metadata/2.targets.json", meta("snapshot", 2), http.StatusBadRequest},
		{"bad name", 1, "/api/release/metadata/..json", meta("root", 1), http.StatusBadRequest},
		{"timestamp 2", 1, "/api/release/metadata/timestamp.json", meta("timestamp", 2), http.StatusCreated},
		{"timestamp back to 1 refused", 1, "/api/release/metadata/timestamp.json", meta("timestamp", 1), http.StatusConflict},
		{"timestamp 3", 1, "/api/release/metadata/timestamp.json", meta("timestamp", 3), http.StatusCreated},
		{"artifact", 1, artPath, art, http.StatusCreated},
		{"artifact not its hash", 1, artPath, []byte("zos v2"), http.StatusBadRequest},
		{"artifact bad path", 1, "/api/release/targets/testing/v1/extra/" + hex.EncodeToString(sum[:]) + ".zos", art, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, signedRequest(t, tw.signer(tt.twin), http.MethodPut, tt.path, tt.body))
			if w.Code != tt.status {
				t.Fatalf("got %d %s, want %d", w.Code, w.Body, tt.status)
			}
		})
	}
	reads := []struct {
		path, want string
	}{
		{"/api/release/metadata/timestamp.json", string(meta("timestamp", 3))},
		{"/api/release/metadata/1.root.json", string(meta("root", 1))},
		{artPath, "zos v1"},
	}
	for _, rd := range reads {
		req, _ := http.NewRequest(http.MethodGet, rd.path, nil)
		w := serve(h, req)
		if w.Code != http.StatusOK || w.Body.String() != rd.want {
			t.Errorf("GET %s: got %d %q, want %q", rd.path, w.Code, w.Body, rd.want)
		}
	}
}
