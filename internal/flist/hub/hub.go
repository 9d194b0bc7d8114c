// Package hub is the flist hub served by zgrid --hub: it stores flists in
// repositories and their blocks, content-addressed and deduplicated, over
// HTTP. Reading is open; every upload is signed by a twin whose key the
// registry knows, and a repository belongs to the twin that first uploaded
// to it.
//
//	GET  /api/flist                         repositories
//	GET  /api/flist/{repo}                  flists and tags of a repository
//	GET  /api/flist/{repo}/{name}/light     one flist's info
//	PUT  /api/flist/{repo}/{name}           upload a flist (signed)
//	GET  /api/flist/{repo}/tags/{tag}       a tag's info
//	PUT  /api/flist/{repo}/tags/{tag}       point a tag at a flist (signed; {"target": NAME})
//	GET  /{repo}/{name}                     download a flist or the flist a tag names
//	GET  /{repo}/{name}.md5                 its md5
//	GET|HEAD /api/v1/blocks/{id}            a block
//	PUT  /api/v1/blocks/{id}                upload a block (signed; checked against its id)
package hub

import (
	"context"
	"crypto/ed25519"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

// TwinKeys finds a twin's key (the registry client).
type TwinKeys interface {
	TwinKey(ctx context.Context, twin uint32) (ed25519.PublicKey, error)
}

// Config of a hub.
type Config struct {
	Dir       string        // data directory
	MaxSkew   time.Duration // accepted clock difference of signed requests (5 min when 0)
	MaxFlist  int64         // bytes of one flist (256 MiB when 0)
	MaxBlock  int64         // bytes of one block (16 MiB when 0)
	ReadLimit time.Duration // server read/write timeout (5 min when 0)
}

// Stats count the hub's block traffic.
type Stats struct {
	BlocksStored int64 // blocks written
	BlocksDedup  int64 // uploads of blocks already held
}

// Hub serves flists and blocks from a directory.
type Hub struct {
	cfg  Config
	keys TwinKeys
	log  *slog.Logger

	stored, dedup atomic.Int64

	mu sync.Mutex // serializes writes of repository owners, flists and tags
}

// New opens (creating) the hub's directory.
func New(cfg Config, keys TwinKeys, log *slog.Logger) (*Hub, error) {
	if cfg.Dir == "" {
		return nil, errors.New("hub: no data directory")
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = 5 * time.Minute
	}
	if cfg.MaxFlist == 0 {
		cfg.MaxFlist = 256 << 20
	}
	if cfg.MaxBlock == 0 {
		cfg.MaxBlock = 16 << 20
	}
	if cfg.ReadLimit == 0 {
		cfg.ReadLimit = 5 * time.Minute
	}
	for _, d := range []string{"blocks", "flists"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating hub directory: %w", err)
		}
	}
	return &Hub{cfg: cfg, keys: keys, log: log}, nil
}

// Stats returns the block counters.
func (h *Hub) Stats() Stats { return Stats{BlocksStored: h.stored.Load(), BlocksDedup: h.dedup.Load()} }

// Handler is the hub's HTTP API.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/blocks/{id}", h.getBlock)
	mux.HandleFunc("PUT /api/v1/blocks/{id}", h.putBlock)
	mux.HandleFunc("GET /api/flist", h.listRepos)
	mux.HandleFunc("GET /api/flist/{repo}", h.listRepo)
	// {name}/light and tags/{tag} share one pattern (ServeMux cannot
	// tell them apart).
	mux.HandleFunc("GET /api/flist/{repo}/{name}/{what}", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.PathValue("name") == "tags":
			r.SetPathValue("tag", r.PathValue("what"))
			h.getTag(w, r)
		case r.PathValue("what") == "light":
			h.info(w, r)
		default:
			http.NotFound(w, r)
		}
	})
	mux.HandleFunc("PUT /api/flist/{repo}/{name}", h.putFlist)
	mux.HandleFunc("PUT /api/flist/{repo}/tags/{tag}", h.putTag)
	mux.HandleFunc("GET /{repo}/{name}", h.download)
	return mux
}

// Serve serves the API on ln until ctx ends.
func (h *Hub) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: h.Handler(), ReadTimeout: h.cfg.ReadLimit, WriteTimeout: h.cfg.ReadLimit,
		ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		case <-done:
		}
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving hub: %w", err)
	}
	return nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

func httpError(w http.ResponseWriter, code int, format string, a ...any) {
	http.Error(w, fmt.Sprintf(format, a...), code)
}

// auth checks a signed request and returns its twin and body.
func (h *Hub) auth(w http.ResponseWriter, r *http.Request, limit int64) (uint32, []byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		httpError(w, http.StatusRequestEntityTooLarge, "reading body: %v", err)
		return 0, nil, false
	}
	twin, err := strconv.ParseUint(r.Header.Get(flist.HeaderTwin), 10, 32)
	if err != nil {
		httpError(w, http.StatusUnauthorized, "missing or bad %s", flist.HeaderTwin)
		return 0, nil, false
	}
	ts, err := strconv.ParseInt(r.Header.Get(flist.HeaderTime), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > h.cfg.MaxSkew {
		httpError(w, http.StatusUnauthorized, "missing or stale %s", flist.HeaderTime)
		return 0, nil, false
	}
	sig, err := hex.DecodeString(r.Header.Get(flist.HeaderSignature))
	if err != nil || len(sig) != ed25519.SignatureSize {
		httpError(w, http.StatusUnauthorized, "missing or bad %s", flist.HeaderSignature)
		return 0, nil, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	pub, err := h.keys.TwinKey(ctx, uint32(twin))
	if err != nil {
		httpError(w, http.StatusUnauthorized, "twin %d: %v", twin, err)
		return 0, nil, false
	}
	if !ed25519.Verify(pub, flist.SignedMessage(r.Method, r.URL.Path, ts, body), sig) {
		httpError(w, http.StatusUnauthorized, "bad signature for twin %d", twin)
		return 0, nil, false
	}
	return uint32(twin), body, true
}

func (h *Hub) blockPath(id [flist.HashSize]byte) string {
	s := hex.EncodeToString(id[:])
	return filepath.Join(h.cfg.Dir, "blocks", s[:2], s)
}

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

func (h *Hub) putBlock(w http.ResponseWriter, r *http.Request) {
	id, err := flist.ParseID(r.PathValue("id"))
	if err != nil {
		httpError(w, http.StatusBadRequest, "%v", err)
		return
	}
	twin, body, ok := h.auth(w, r, h.cfg.MaxBlock)
	if !ok {
		return
	}
	if !flist.CheckID(id, body) {
		httpError(w, http.StatusBadRequest, "block does not match id %x", id)
		return
	}
	p := h.blockPath(id)
	if _, err := os.Stat(p); err == nil {
		h.dedup.Add(1)
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := writeFile(p, body); err != nil {
		h.log.Error("block_write", "err", err)
		httpError(w, http.StatusInternalServerError, "storing block: %v", err)
		return
	}
	h.stored.Add(1)
	h.log.Debug("block_stored", "id", hex.EncodeToString(id[:]), "twin", twin)
	w.WriteHeader(http.StatusCreated)
}

func writeFile(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
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

func (h *Hub) repoDir(repo string) string { return filepath.Join(h.cfg.Dir, "flists", repo) }

func (h *Hub) owner(repo string) (uint32, bool) {
	b, err := os.ReadFile(filepath.Join(h.repoDir(repo), ".owner"))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	return uint32(n), err == nil
}

// claim makes twin the repository's owner, or checks it is.
func (h *Hub) claim(repo string, twin uint32) error {
	if o, ok := h.owner(repo); ok {
		if o != twin {
			return fmt.Errorf("repository %s belongs to twin %d", repo, o)
		}
		return nil
	}
	return writeFile(filepath.Join(h.repoDir(repo), ".owner"), []byte(strconv.FormatUint(uint64(twin), 10)))
}

func (h *Hub) names(w http.ResponseWriter, r *http.Request, keys ...string) ([]string, bool) {
	var out []string
	for _, k := range keys {
		v := r.PathValue(k)
		if !validName.MatchString(v) {
			httpError(w, http.StatusBadRequest, "bad %s %q", k, v)
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

func (h *Hub) putFlist(w http.ResponseWriter, r *http.Request) {
	n, ok := h.names(w, r, "repo", "name")
	if !ok {
		return
	}
	twin, body, ok := h.auth(w, r, h.cfg.MaxFlist)
	if !ok {
		return
	}
	// Refuse what is not a valid flist.
	tmp, err := os.CreateTemp(h.cfg.Dir, ".upload-*")
	if err != nil {
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(body)
	tmp.Close()
	if err == nil {
		_, err = flist.Open(r.Context(), tmp.Name())
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, "not a valid flist: %v", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.claim(n[0], twin); err != nil {
		httpError(w, http.StatusForbidden, "%v", err)
		return
	}
	if err := writeFile(filepath.Join(h.repoDir(n[0]), n[1]), body); err != nil {
		httpError(w, http.StatusInternalServerError, "storing flist: %v", err)
		return
	}
	h.log.Info("flist_uploaded", "repo", n[0], "name", n[1], "twin", twin, "size", len(body))
	writeJSON(w, http.StatusCreated, h.infoOf(n[0], n[1]))
}

func (h *Hub) tagPath(repo, tag string) string { return filepath.Join(h.repoDir(repo), ".tags", tag) }

func (h *Hub) putTag(w http.ResponseWriter, r *http.Request) {
	n, ok := h.names(w, r, "repo", "tag")
	if !ok {
		return
	}
	twin, body, ok := h.auth(w, r, 4096)
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
	if o, ok := h.owner(n[0]); !ok || o != twin {
		httpError(w, http.StatusForbidden, "repository %s is not twin %d's", n[0], twin)
		return
	}
	if _, err := os.Stat(filepath.Join(h.repoDir(n[0]), req.Target)); err != nil {
		httpError(w, http.StatusNotFound, "no flist %s/%s", n[0], req.Target)
		return
	}
	if err := writeFile(h.tagPath(n[0], n[1]), []byte(req.Target)); err != nil {
		httpError(w, http.StatusInternalServerError, "storing tag: %v", err)
		return
	}
	writeJSON(w, http.StatusCreated, h.tagInfo(n[0], n[1]))
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

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
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
	n, ok := h.names(w, r, "repo", "name")
	if !ok {
		return
	}
	i := h.infoOf(n[0], n[1])
	if i == nil {
		i = h.tagInfo(n[0], n[1])
	}
	if i == nil {
		httpError(w, http.StatusNotFound, "no flist %s/%s", n[0], n[1])
		return
	}
	writeJSON(w, http.StatusOK, i)
}

func (h *Hub) getTag(w http.ResponseWriter, r *http.Request) {
	n, ok := h.names(w, r, "repo", "tag")
	if !ok {
		return
	}
	i := h.tagInfo(n[0], n[1])
	if i == nil {
		httpError(w, http.StatusNotFound, "no tag %s/%s", n[0], n[1])
		return
	}
	writeJSON(w, http.StatusOK, i)
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
	i := h.infoOf(repo, name)
	if i == nil {
		i = h.tagInfo(repo, name)
	}
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
