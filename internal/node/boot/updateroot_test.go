package boot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadUpdateRoot: a pinned root is taken from the hub only when its
// SHA-256 matches; a baked root is read from its file.
func TestLoadUpdateRoot(t *testing.T) {
	root := []byte(`{"signed":{"_type":"root","version":1}}`)
	sum := sha256.Sum256(root)
	good := RootHashPrefix + hex.EncodeToString(sum[:])
	other := RootHashPrefix + strings.Repeat("0", 64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/release/metadata/1.root.json" {
			http.NotFound(w, r)
			return
		}
		w.Write(root)
	}))
	t.Cleanup(srv.Close)
	baked := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(baked, root, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, hub, spec, err string
	}{
		{"pinned root from the hub", srv.URL, good, ""},
		{"hub serves another root", srv.URL, other, "not the"},
		{"pinned without a hub", "", good, "needs update_hub"},
		{"hub without a repository", srv.URL + "/nothing", good, "404"},
		{"baked root", "", baked, ""},
		{"baked root missing", "", baked + ".gone", "reading the update root"},
		{"not a root spec", srv.URL, "https://x/root.json", "want sha256:HEX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadUpdateRoot(context.Background(), tt.hub, tt.spec, srv.Client())
			if tt.err == "" {
				if err != nil || string(got) != string(root) {
					t.Fatalf("got %q, %v, want the root", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("got %q, %v, want an error with %q", got, err, tt.err)
			}
		})
	}
}
