package hub

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReservedOwner(t *testing.T) {
	tests := []struct {
		repo     string
		twin     uint32
		reserved bool
	}{
		{"twin7", 7, true},
		{"twin4294967295", 4294967295, true},
		{"twin4294967296", 0, true}, // past uint32
		{"twin07", 0, true},
		{"Twin7", 0, true},
		{"TWIN7", 0, true},
		{"twin0", 0, true},
		{"twin", 0, false},
		{"twin7x", 0, false},
		{"mytwin7", 0, false},
		{"app", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.repo, func(t *testing.T) {
			twin, reserved := reservedOwner(tt.repo)
			if twin != tt.twin || reserved != tt.reserved {
				t.Errorf("got %d %v, want %d %v", twin, reserved, tt.twin, tt.reserved)
			}
		})
	}
}

// TestRepositorySquatting: twin<ID> is twin ID's whoever comes first, look-
// alike names are nobody's, other repositories their creator's.
func TestRepositorySquatting(t *testing.T) {
	tw := newTwins(t)
	h := newTestHub(t, Config{}, tw)
	fl := testFlist(t, "etc")
	steps := []struct {
		name string
		twin uint32
		path string
		want int
	}{
		{"squatter first into twin7", 9, "/api/flist/twin7/app.fl", http.StatusForbidden},
		{"squatter into look-alike Twin7", 9, "/api/flist/Twin7/app.fl", http.StatusForbidden},
		{"squatter into look-alike twin07", 9, "/api/flist/twin07/app.fl", http.StatusForbidden},
		{"twin 7 into look-alike twin07", 7, "/api/flist/twin07/app.fl", http.StatusForbidden},
		{"twin 7 into its own", 7, "/api/flist/twin7/app.fl", http.StatusCreated},
		{"squatter after the owner", 9, "/api/flist/twin7/app.fl", http.StatusForbidden},
		{"squatter's own", 9, "/api/flist/twin9/app.fl", http.StatusCreated},
		{"twin 9 creates shared", 9, "/api/flist/shared/app.fl", http.StatusCreated},
		{"twin 7 into twin 9's shared", 7, "/api/flist/shared/b.fl", http.StatusForbidden},
		{"twin 9 again into shared", 9, "/api/flist/shared/b.fl", http.StatusCreated},
	}
	for _, s := range steps {
		w := serve(h, signedRequest(t, tw.signer(s.twin), http.MethodPut, s.path, fl))
		if w.Code != s.want {
			t.Errorf("%s: got %d %q, want %d", s.name, w.Code, w.Body.String(), s.want)
		}
	}
	tag := []byte(`{"target": "app.fl"}`)
	if w := serve(h, signedRequest(t, tw.signer(9), http.MethodPut, "/api/flist/twin7/tags/latest", tag)); w.Code != http.StatusForbidden {
		t.Errorf("squatter tags twin7: got %d %q, want 403", w.Code, w.Body.String())
	}
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/tags/latest", tag)); w.Code != http.StatusCreated {
		t.Errorf("twin 7 tags twin7: got %d %q, want 201", w.Code, w.Body.String())
	}
	if _, err := os.Stat(filepath.Join(h.cfg.Dir, "flists", "Twin7")); !os.IsNotExist(err) {
		t.Errorf("look-alike repository created: %v", err)
	}
	var info Info
	w := serve(h, httptest.NewRequest(http.MethodGet, "/api/flist/twin7/app.fl/light", nil))
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || info.Owner != 7 {
		t.Errorf("twin7/app.fl info: got %+v %v, want owner 7", info, err)
	}
}

// TestOldSquatterRecordLoses: a twin7 repository an older hub gave to twin
// 9 is moved aside when the hub opens (kept, not served), and twin 7
// publishes there; an owner record naming another twin for twin7 made while
// the hub runs is overruled too.
func TestOldSquatterRecordLoses(t *testing.T) {
	tw := newTwins(t)
	dir := t.TempDir()
	squatted := filepath.Join(dir, "flists", "twin7")
	evil := testFlist(t, "evil")
	for p, b := range map[string][]byte{".owner": []byte("9"), "app.fl": evil, ".tags/latest": []byte("app.fl")} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(squatted, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(squatted, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := newTestHub(t, Config{Dir: dir}, tw)

	for _, p := range []string{"/twin7/app.fl", "/twin7/latest"} {
		if w := serve(h, httptest.NewRequest(http.MethodGet, p, nil)); w.Code != http.StatusNotFound {
			t.Errorf("GET %s of the squatter: got %d, want 404", p, w.Code)
		}
	}
	q, _ := filepath.Glob(filepath.Join(dir, "quarantine", "twin7.*", "app.fl"))
	if len(q) != 1 {
		t.Fatalf("squatter's flist in quarantine: got %v, want one", q)
	} else if b, _ := os.ReadFile(q[0]); string(b) != string(evil) {
		t.Errorf("quarantined flist changed")
	}
	if w := serve(h, signedRequest(t, tw.signer(9), http.MethodPut, "/api/flist/twin7/app.fl", evil)); w.Code != http.StatusForbidden {
		t.Errorf("squatter again: got %d %q, want 403", w.Code, w.Body.String())
	}
	good := testFlist(t, "good")
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/app.fl", good)); w.Code != http.StatusCreated {
		t.Fatalf("twin 7: got %d %q, want 201", w.Code, w.Body.String())
	}
	if w := serve(h, httptest.NewRequest(http.MethodGet, "/twin7/app.fl", nil)); w.Body.String() != string(good) {
		t.Errorf("twin7/app.fl is not twin 7's")
	}

	// A record naming twin 9 appears while the hub runs: twin 7 still
	// writes, and the record is corrected.
	if err := os.WriteFile(filepath.Join(squatted, ".owner"), []byte("9"), 0o644); err != nil {
		t.Fatal(err)
	}
	if w := serve(h, signedRequest(t, tw.signer(9), http.MethodPut, "/api/flist/twin7/b.fl", evil)); w.Code != http.StatusForbidden {
		t.Errorf("squatter with a record: got %d %q, want 403", w.Code, w.Body.String())
	}
	if w := serve(h, signedRequest(t, tw.signer(7), http.MethodPut, "/api/flist/twin7/b.fl", good)); w.Code != http.StatusCreated {
		t.Errorf("twin 7 against a squatter's record: got %d %q, want 201", w.Code, w.Body.String())
	}
	if b, _ := os.ReadFile(filepath.Join(squatted, ".owner")); strings.TrimSpace(string(b)) != "7" {
		t.Errorf("owner record: got %q, want 7", b)
	}
	// Reopening keeps twin 7's own repository.
	h2 := newTestHub(t, Config{Dir: dir}, tw)
	if w := serve(h2, httptest.NewRequest(http.MethodGet, "/twin7/b.fl", nil)); w.Code != http.StatusOK {
		t.Errorf("twin 7's repository after reopening: got %d", w.Code)
	}
}
