// Package hub is the flist hub served by zgrid --hub: it stores flists in
// repositories and their blocks, content-addressed and deduplicated, over
// HTTP. zosctl flist push/build and flist.HTTPStore are its clients.
//
// Who may write what:
//
//   - Reading is open to anyone.
//   - Every write is a request signed by a twin whose key the registry knows
//     (flist.SignRequest): the twin, the time, a nonce and the SHA-256 of
//     the body travel in headers under an ed25519 signature. The hub checks
//     all of it before it reads a byte of the body, then streams the body
//     through SHA-256 into a temporary file that takes its place only if
//     the sum matches. A nonce is accepted once while its time is accepted
//     (Config.MaxSkew), so a signed request cannot be replayed.
//   - Blocks may be uploaded by any twin: a block is checked against its id.
//   - The repository twin<ID> (zosctl flist push's default) belongs to twin
//     ID, always, whoever comes first; names that only look like one
//     ("Twin7", "twin07", "twin0") belong to nobody. Any other repository
//     belongs to the twin that created it (its .owner record). Only a
//     repository's owner uploads flists into it and sets its tags.
//   - Repositories in the twins' namespace whose .owner record does not
//     name the twin (an older hub gave a repository to its first uploader,
//     whoever it was) are moved aside into DIR/quarantine, not deleted,
//     when the hub opens its directory, so they are not served as the
//     twin's.
//   - Bodies are bounded per route (Config.MaxFlist, MaxBlock) as they
//     stream, uploads at once per twin and in all (MaxUploadsPerTwin,
//     MaxUploads); a twin past its bound is told to wait (429).
//
// API:
//
//	GET  /api/flist                         repositories
//	GET  /api/flist/{repo}                  flists and tags of a repository
//	GET  /api/flist/{repo}/{name}/light     one flist's info
//	PUT  /api/flist/{repo}/{name}           upload a flist (signed, repository owner)
//	GET  /api/flist/{repo}/tags/{tag}       a tag's info
//	PUT  /api/flist/{repo}/tags/{tag}       point a tag at a flist (signed, repository owner; {"target": NAME})
//	GET  /{repo}/{name}                     download a flist or the flist a tag names
//	GET  /{repo}/{name}.md5                 its md5
//	GET|HEAD /api/v1/blocks/{id}            a block
//	GET|HEAD /{id[:2]}/{id}, /{id}          a block, where rfs looks for it (rfs.go)
//	PUT  /api/v1/blocks/{id}                upload a block (signed; checked against its id)
//	GET|PUT /api/release/...                the release repository (release.go; PUT by Config.ReleaseTwins only)
//	GET  /boot/{farm}.ipxe                  network boot script (Config.Boot: internal/netboot)
package hub

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"
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

	MaxUploads        int // signed uploads at once, all twins (32 when 0)
	MaxUploadsPerTwin int // signed uploads at once, one twin (4 when 0)
	MaxNonces         int // nonces remembered, all twins (1<<18 when 0)
	MaxNoncesPerTwin  int // nonces remembered, one twin (1<<15 when 0)

	ReleaseTwins []uint32 // twins that may publish releases (release.go); none when empty
	MaxArtifact  int64    // bytes of one release artifact (512 MiB when 0)

	// Boot, when set, answers GET /boot/... (internal/netboot: network
	// boot from the release repository).
	Boot http.Handler
}

func (c *Config) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.MaxSkew <= 0 {
		c.MaxSkew = 5 * time.Minute
	}
	if c.MaxFlist <= 0 {
		c.MaxFlist = 256 << 20
	}
	if c.MaxBlock <= 0 {
		c.MaxBlock = 16 << 20
	}
	if c.MaxArtifact <= 0 {
		c.MaxArtifact = 512 << 20
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = 5 * time.Minute
	}
	def(&c.MaxUploads, 32)
	def(&c.MaxUploadsPerTwin, 4)
	def(&c.MaxNonces, 1<<18)
	def(&c.MaxNoncesPerTwin, 1<<15)
}

// Stats count the hub's block traffic.
type Stats struct {
	BlocksStored int64 // blocks written
	BlocksDedup  int64 // uploads of blocks already held
}

// Hub serves flists and blocks from a directory.
type Hub struct {
	cfg    Config
	keys   TwinKeys
	log    *slog.Logger
	now    func() time.Time
	replay *replay
	slots  *slots

	stored, dedup atomic.Int64

	mu sync.Mutex // serializes writes of repository owners, flists and tags
}

// New opens (creating) the hub's directory. Temporary files of uploads an
// earlier run left are removed; twin<ID> repositories another twin holds
// (made by an older hub) are moved into DIR/quarantine.
func New(cfg Config, keys TwinKeys, log *slog.Logger) (*Hub, error) {
	if cfg.Dir == "" {
		return nil, errors.New("hub: no data directory")
	}
	cfg.defaults()
	h := &Hub{cfg: cfg, keys: keys, log: log, now: time.Now,
		replay: newReplay(2*cfg.MaxSkew, cfg.MaxNonces, cfg.MaxNoncesPerTwin),
		slots:  newSlots(cfg.MaxUploads, cfg.MaxUploadsPerTwin)}
	if err := os.RemoveAll(h.tmpDir()); err != nil {
		return nil, fmt.Errorf("clearing hub temporary files: %w", err)
	}
	for _, d := range []string{"blocks", "flists", "tmp"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating hub directory: %w", err)
		}
	}
	if err := h.quarantineSquatted(); err != nil {
		return nil, err
	}
	return h, nil
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
	mux.HandleFunc("GET /api/release/metadata/{file}", h.getReleaseMeta)
	mux.HandleFunc("PUT /api/release/metadata/{file}", h.putReleaseMeta)
	mux.HandleFunc("GET /api/release/targets/{path...}", h.getReleaseTarget)
	mux.HandleFunc("PUT /api/release/targets/{path...}", h.putReleaseTarget)
	if h.cfg.Boot != nil {
		mux.Handle("GET /boot/{file}", h.cfg.Boot)
	}
	mux.HandleFunc("GET /{repo}/{name}", h.getPair) // or a block: rfs.go
	mux.HandleFunc("GET /{id}", h.getFlat)
	return mux
}

// Serve serves the API on ln until ctx ends.
func (h *Hub) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: h.Handler(), ReadTimeout: h.cfg.ReadLimit, WriteTimeout: h.cfg.ReadLimit,
		ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(h.log.Handler(), slog.LevelWarn)}
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

// statusError is a refused request: its status and what to tell the client.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

func refuse(code int, format string, a ...any) error {
	return &statusError{code: code, msg: fmt.Sprintf(format, a...)}
}

func httpError(w http.ResponseWriter, code int, format string, a ...any) {
	http.Error(w, fmt.Sprintf(format, a...), code)
}

// fail answers a refused or failed request: a statusError with its status,
// anything else as an internal error (logged).
func (h *Hub) fail(w http.ResponseWriter, r *http.Request, err error) {
	var se *statusError
	if !errors.As(err, &se) {
		h.log.Error("request_failed", "method", r.Method, "path", r.URL.Path, "err", err)
		httpError(w, http.StatusInternalServerError, "%v", err)
		return
	}
	if se.code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	httpError(w, se.code, "%s", se.msg)
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

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
