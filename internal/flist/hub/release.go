package hub

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The release repository (internal/release): TUF metadata and the
// artifacts they sign, under DIR/release. Anyone reads; only the twins in
// Config.ReleaseTwins publish, with requests signed as for flists. The hub
// does not judge releases (nodes verify them through TUF against the root
// they trust); it keeps what was published immutable, so a published
// artifact or metadata version can never be swapped, except timestamp.json,
// which only moves forward.
//
//	GET /api/release/metadata/{file}        N.root.json, N.targets.json, N.snapshot.json, timestamp.json
//	PUT /api/release/metadata/{file}        (signed, release twin)
//	GET /api/release/targets/{ch}/{ver}/{sha256}.{name}
//	PUT /api/release/targets/{ch}/{ver}/{sha256}.{name}   (signed, release twin; body must hash to sha256)

var (
	releaseMetaRe = regexp.MustCompile(`^(?:([1-9][0-9]{0,17})\.(root|targets|snapshot)|(timestamp))\.json$`)
	releaseNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,99}$`)
	releaseFileRe = regexp.MustCompile(`^([0-9a-f]{64})\.([A-Za-z0-9][A-Za-z0-9._+-]{0,99})$`)
)

// maxReleaseMeta bounds one metadata file.
const maxReleaseMeta = 4 << 20

func (h *Hub) releaseDir() string { return filepath.Join(h.cfg.Dir, "release") }

func validReleaseName(s string) bool {
	return releaseNameRe.MatchString(s) && !strings.Contains(s, "..")
}

// releaseTarget checks a target path CH/VER/SHA256.NAME and returns its file
// and the hex SHA-256 it names.
func (h *Hub) releaseTarget(p string) (file, sum string, ok bool) {
	parts := strings.Split(p, "/")
	if len(parts) != 3 || !validReleaseName(parts[0]) || !validReleaseName(parts[1]) {
		return "", "", false
	}
	m := releaseFileRe.FindStringSubmatch(parts[2])
	if m == nil || strings.Contains(m[2], "..") {
		return "", "", false
	}
	return filepath.Join(h.releaseDir(), "targets", parts[0], parts[1], parts[2]), m[1], true
}

func (h *Hub) getReleaseMeta(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if !releaseMetaRe.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	h.serveReleaseFile(w, r, filepath.Join(h.releaseDir(), "metadata", name))
}

func (h *Hub) getReleaseTarget(w http.ResponseWriter, r *http.Request) {
	p, _, ok := h.releaseTarget(r.PathValue("path"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	h.serveReleaseFile(w, r, p)
}

func (h *Hub) serveReleaseFile(w http.ResponseWriter, r *http.Request, p string) {
	f, err := os.Open(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// authorizeRelease authenticates a release write and checks its twin is a
// release manager, before the body is read.
func (h *Hub) authorizeRelease(w http.ResponseWriter, r *http.Request, limit int64) *signed {
	s, err := h.authenticate(w, r, limit)
	if err != nil {
		h.fail(w, r, err)
		return nil
	}
	if !slices.Contains(h.cfg.ReleaseTwins, s.twin) {
		s.release()
		httpError(w, http.StatusForbidden, "twin %d may not publish releases", s.twin)
		return nil
	}
	return s
}

func (h *Hub) putReleaseTarget(w http.ResponseWriter, r *http.Request) {
	p, sum, ok := h.releaseTarget(r.PathValue("path"))
	if !ok {
		httpError(w, http.StatusBadRequest, "bad release target path (CHANNEL/VERSION/SHA256.NAME)")
		return
	}
	s := h.authorizeRelease(w, r, h.cfg.MaxArtifact)
	if s == nil {
		return
	}
	defer s.release()
	if hex.EncodeToString(s.sum[:]) != sum {
		httpError(w, http.StatusBadRequest, "body's SHA-256 is not the one its name gives")
		return
	}
	tmp, _, err := h.receiveFile(s)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer os.Remove(tmp)
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := os.Stat(p); err == nil {
		// Content-addressed: the same name holds the same bytes.
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := commit(tmp, p); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("release_target_published", "path", r.PathValue("path"), "twin", s.twin)
	w.WriteHeader(http.StatusCreated)
}

func (h *Hub) putReleaseMeta(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	m := releaseMetaRe.FindStringSubmatch(name)
	if m == nil {
		httpError(w, http.StatusBadRequest, "bad release metadata name %q", name)
		return
	}
	s := h.authorizeRelease(w, r, maxReleaseMeta)
	if s == nil {
		return
	}
	defer s.release()
	body, ok := h.receiveSmall(w, r, s)
	if !ok {
		return
	}
	role, version := m[2], m[1]
	if m[3] != "" {
		role = m[3]
	}
	// The hub only checks the file is what its name says; nodes check
	// signatures against the root they trust.
	var md struct {
		Signed struct {
			Type    string `json:"_type"`
			Version int64  `json:"version"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(body, &md); err != nil || md.Signed.Type != role || md.Signed.Version <= 0 {
		httpError(w, http.StatusBadRequest, "%s is not %s metadata", name, role)
		return
	}
	if version != "" && strconv.FormatInt(md.Signed.Version, 10) != version {
		httpError(w, http.StatusBadRequest, "%s holds version %d", name, md.Signed.Version)
		return
	}
	p := filepath.Join(h.releaseDir(), "metadata", name)
	h.mu.Lock()
	defer h.mu.Unlock()
	old, err := os.ReadFile(p)
	switch {
	case err == nil && bytes.Equal(old, body):
		w.WriteHeader(http.StatusOK)
		return
	case err == nil && version != "":
		httpError(w, http.StatusConflict, "%s is published already with other contents", name)
		return
	case err == nil:
		var prev struct {
			Signed struct {
				Version int64 `json:"version"`
			} `json:"signed"`
		}
		if json.Unmarshal(old, &prev) == nil && md.Signed.Version <= prev.Signed.Version {
			httpError(w, http.StatusConflict, "timestamp version %d is not over the published %d", md.Signed.Version, prev.Signed.Version)
			return
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.writeFile(p, body); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("release_metadata_published", "file", name, "twin", s.twin)
	w.WriteHeader(http.StatusCreated)
}
