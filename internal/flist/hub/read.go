package hub

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

// The read handlers: open to anyone.

func (h *Hub) getBlock(w http.ResponseWriter, r *http.Request) {
	id, err := flist.ParseID(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	f, err := os.Open(h.blockPath(id))
	if errors.Is(err, os.ErrNotExist) {
		httpError(w, http.StatusNotFound, "no block %x", id)
		return
	}
	if err != nil {
		httpError(w, http.StatusInternalServerError, "reading block: %v", err)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// Info describes a flist or a tag of a repository.
type Info struct {
	Name    string `json:"name"`
	Type    string `json:"type"` // "regular" or "tag"
	Target  string `json:"target,omitempty"`
	Size    int64  `json:"size"`
	MD5     string `json:"md5"`
	Updated int64  `json:"updated"`
	Owner   uint32 `json:"owner,omitempty"`
}

func (h *Hub) infoOf(repo, name string) *Info {
	p := filepath.Join(h.repoDir(repo), name)
	st, err := os.Stat(p)
	if err != nil || !st.Mode().IsRegular() {
		return nil
	}
	info := &Info{Name: name, Type: "regular", Size: st.Size(), Updated: st.ModTime().Unix()}
	info.Owner, _ = h.owner(repo)
	if f, err := os.Open(p); err == nil {
		hs := md5.New()
		_, _ = io.Copy(hs, f)
		f.Close()
		info.MD5 = hex.EncodeToString(hs.Sum(nil))
	}
	return info
}

func (h *Hub) tagInfo(repo, tag string) *Info {
	b, err := os.ReadFile(h.tagPath(repo, tag))
	if err != nil {
		return nil
	}
	target := string(b)
	info := h.infoOf(repo, target)
	if info == nil {
		return nil
	}
	info.Name, info.Type, info.Target = tag, "tag", target
	return info
}

func (h *Hub) listRepos(w http.ResponseWriter, _ *http.Request) {
	ents, err := os.ReadDir(filepath.Join(h.cfg.Dir, "flists"))
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	out := []string{}
	for _, e := range ents {
		if e.IsDir() && validName.MatchString(e.Name()) {
			out = append(out, e.Name())
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Hub) listRepo(w http.ResponseWriter, r *http.Request) {
	n, ok := h.names(w, r, "repo")
	if !ok {
		return
	}
	ents, err := os.ReadDir(h.repoDir(n[0]))
	if errors.Is(err, os.ErrNotExist) {
		httpError(w, http.StatusNotFound, "no repository %s", n[0])
		return
	}
	out := []*Info{}
	for _, e := range ents {
		if validName.MatchString(e.Name()) {
			if i := h.infoOf(n[0], e.Name()); i != nil {
				out = append(out, i)
			}
		}
	}
	tags, _ := os.ReadDir(filepath.Join(h.repoDir(n[0]), ".tags"))
	for _, e := range tags {
		if i := h.tagInfo(n[0], e.Name()); i != nil {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (h *Hub) info(w http.ResponseWriter, r *http.Request) {
	h.serveInfo(w, r, "name", "flist", h.flistInfo)
}

func (h *Hub) getTag(w http.ResponseWriter, r *http.Request) {
	h.serveInfo(w, r, "tag", "tag", h.tagInfo)
}

// serveInfo answers the Info find gives for the path's repo and key, or
// 404 "no <what> repo/name".
func (h *Hub) serveInfo(w http.ResponseWriter, r *http.Request, key, what string, find func(repo, name string) *Info) {
	n, ok := h.names(w, r, "repo", key)
	if !ok {
		return
	}
	i := find(n[0], n[1])
	if i == nil {
		httpError(w, http.StatusNotFound, "no %s %s/%s", what, n[0], n[1])
		return
	}
	writeJSON(w, http.StatusOK, i)
}

// flistInfo is the flist repo/name, or else the tag of that name.
func (h *Hub) flistInfo(repo, name string) *Info {
	if i := h.infoOf(repo, name); i != nil {
		return i
	}
	return h.tagInfo(repo, name)
}

func (h *Hub) download(w http.ResponseWriter, r *http.Request) {
	n, ok := h.names(w, r, "repo", "name")
	if !ok {
		return
	}
	repo, name := n[0], n[1]
	md5Only := false
	if base, ok := strings.CutSuffix(name, ".md5"); ok && h.infoOf(repo, name) == nil {
		name, md5Only = base, true
	}
	i := h.flistInfo(repo, name)
	if i == nil {
		httpError(w, http.StatusNotFound, "no flist %s/%s", repo, name)
		return
	}
	if md5Only {
		_, _ = io.WriteString(w, i.MD5+"\n")
		return
	}
	target := name
	if i.Type == "tag" {
		target = i.Target
	}
	f, err := os.Open(filepath.Join(h.repoDir(repo), target))
	if err != nil {
		httpError(w, http.StatusNotFound, "no flist %s/%s", repo, name)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Unix(i.Updated, 0), f)
}
