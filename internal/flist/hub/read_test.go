package hub

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadInfo: the info endpoints answer an flist, a tag (also under the
// flist's /light path) and 404 with what was missing; download serves an
// flist or a tag's target.
func TestReadInfo(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{Dir: t.TempDir()}, tw)
	fl := testFlist(t, "app")
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/app.fl", fl)); w.Code != http.StatusCreated {
		t.Fatalf("publishing app.fl: got %d %q", w.Code, w.Body.String())
	}
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/tags/latest", []byte(`{"target":"app.fl"}`))); w.Code != http.StatusCreated {
		t.Fatalf("tagging latest: got %d %q", w.Code, w.Body.String())
	}
	tests := []struct {
		name     string
		path     string
		wantCode int
		wantType string // of the Info answered, or
		wantBody string // a part of the 404 text
	}{
		{"flist", "/api/flist/twin7/app.fl/light", http.StatusOK, "regular", ""},
		{"tag by name", "/api/flist/twin7/latest/light", http.StatusOK, "tag", ""},
		{"tag", "/api/flist/twin7/tags/latest", http.StatusOK, "tag", ""},
		{"missing flist", "/api/flist/twin7/none.fl/light", http.StatusNotFound, "", "no flist twin7/none.fl"},
		{"flist is no tag", "/api/flist/twin7/tags/app.fl", http.StatusNotFound, "", "no tag twin7/app.fl"},
		{"missing repository", "/api/flist/twin8/tags/latest", http.StatusNotFound, "", "no tag twin8/latest"},
		{"download missing", "/twin7/none.fl", http.StatusNotFound, "", "no flist twin7/none.fl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := serve(h, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if w.Code != tt.wantCode {
				t.Fatalf("GET %s: got %d %q, want %d", tt.path, w.Code, w.Body.String(), tt.wantCode)
			}
			if tt.wantCode != http.StatusOK {
				if !strings.Contains(w.Body.String(), tt.wantBody) {
					t.Fatalf("GET %s: got %q, want it to say %q", tt.path, w.Body.String(), tt.wantBody)
				}
				return
			}
			var i Info
			if err := json.Unmarshal(w.Body.Bytes(), &i); err != nil || i.Type != tt.wantType {
				t.Fatalf("GET %s: got %+v, %v; want an Info of type %q", tt.path, i, err, tt.wantType)
			}
		})
	}
	for _, p := range []string{"/twin7/app.fl", "/twin7/latest"} {
		if w := serve(h, httptest.NewRequest(http.MethodGet, p, nil)); w.Code != http.StatusOK || w.Body.String() != string(fl) {
			t.Errorf("GET %s: got %d and %d bytes, want 200 and the flist's %d", p, w.Code, w.Body.Len(), len(fl))
		}
	}
}
