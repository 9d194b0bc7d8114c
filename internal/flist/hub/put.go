package hub

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"

	"golang.org/x/crypto/blake2b"

	"github.com/zos-go/zos/internal/flist"
)

// The write handlers: each authenticates before it reads the body, checks
// the twin's rights before it reads the body, then streams the body.

func (h *Hub) blockPath(id [flist.HashSize]byte) string {
	s := hex.EncodeToString(id[:])
	return filepath.Join(h.cfg.Dir, "blocks", s[:2], s)
}

func (h *Hub) putBlock(w http.ResponseWriter, r *http.Request) {
	id, err := flist.ParseID(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	s, err := h.authenticate(w, r, h.cfg.MaxBlock)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer s.release()
	// A block's id is the BLAKE2b-256 of its bytes (flist.CheckID).
	idHash, _ := blake2b.New256(nil)
	p := h.blockPath(id)
	if _, err := os.Stat(p); err == nil {
		// Held already: the body is still checked, then dropped.
		if _, err := s.receive(idHash); err != nil {
			h.fail(w, r, err)
			return
		}
		if !bytes.Equal(idHash.Sum(nil), id[:]) {
			httpError(w, http.StatusBadRequest, "block does not match id %x", id)
			return
		}
		h.dedup.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	tmp, _, err := h.receiveFile(s, idHash)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer os.Remove(tmp)
	if !bytes.Equal(idHash.Sum(nil), id[:]) {
		httpError(w, http.StatusBadRequest, "block does not match id %x", id)
		return
	}
	if err := commit(tmp, p); err != nil {
		h.fail(w, r, err)
		return
	}
	h.stored.Add(1)
	h.log.Debug("block_stored", "id", hex.EncodeToString(id[:]), "twin", s.twin)
	w.WriteHeader(http.StatusCreated)
}

func (h *Hub) putFlist(w http.ResponseWriter, r *http.Request) {
	n, ok := h.names(w, r, "repo", "name")
	if !ok {
		return
	}
	repo, name := n[0], n[1]
	s := h.authorizeWrite(w, r, repo, h.cfg.MaxFlist)
	if s == nil {
		return
	}
	defer s.release()
	tmp, size, err := h.receiveFile(s)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	defer os.Remove(tmp)
	// Refuse what is not a valid flist.
	if _, err := flist.Open(r.Context(), tmp); err != nil {
		httpError(w, http.StatusBadRequest, "not a valid flist: %v", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.claim(repo, s.twin); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := commit(tmp, filepath.Join(h.repoDir(repo), name)); err != nil {
		h.fail(w, r, err)
		return
	}
	h.log.Info("flist_uploaded", "repo", repo, "name", name, "twin", s.twin, "size", size)
	writeJSON(w, http.StatusCreated, h.infoOf(repo, name))
}

// maxTagBody bounds a tag request's body.
const maxTagBody = 4096

func (h *Hub) tagPath(repo, tag string) string { return filepath.Join(h.repoDir(repo), ".tags", tag) }

func (h *Hub) putTag(w http.ResponseWriter, r *http.Request) {
	n, ok := h.names(w, r, "repo", "tag")
	if !ok {
		return
	}
	repo, tag := n[0], n[1]
	s := h.authorizeWrite(w, r, repo, maxTagBody)
	if s == nil {
		return
	}
	defer s.release()
	body, ok := h.receiveSmall(w, r, s)
	if !ok {
		return
	}
	var req struct {
		Target string `json:"target"`
	}
	if err := json.Unmarshal(body, &req); err != nil || !validName.MatchString(req.Target) {
		httpError(w, http.StatusBadRequest, "want {\"target\": NAME}")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.mayWrite(repo, s.twin); err != nil {
		h.fail(w, r, err)
		return
	}
	if st, err := os.Stat(filepath.Join(h.repoDir(repo), req.Target)); err != nil || !st.Mode().IsRegular() {
		httpError(w, http.StatusNotFound, "no flist %s/%s", repo, req.Target)
		return
	}
	if err := h.writeFile(h.tagPath(repo, tag), []byte(req.Target)); err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, h.tagInfo(repo, tag))
}

// authorizeWrite authenticates a request of at most limit bytes that
// writes to repo, which its twin must be allowed to write. On failure it
// has answered the request and returns nil; on success the caller
// releases s.
func (h *Hub) authorizeWrite(w http.ResponseWriter, r *http.Request, repo string, limit int64) *signed {
	s, err := h.authenticate(w, r, limit)
	if err != nil {
		h.fail(w, r, err)
		return nil
	}
	if err := h.mayWrite(repo, s.twin); err != nil {
		h.fail(w, r, err)
		s.release()
		return nil
	}
	return s
}
