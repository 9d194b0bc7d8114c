// Package explorer serves a read-only view of the grid registry: ThreeFold's
// gridproxy API (its paths, query parameters, JSON field names, types and
// units; README.md says what matches and what differs) with our extra
// fields, and a live web page at / that reads the same API. It keeps an in-memory snapshot of the
// registry, refreshed from a Source in the background and on demand, so that
// queries over tens of thousands of nodes do not touch the registry. zgrid
// runs it with the registry client as the Source; zosctl and browsers read it.
package explorer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// Source is what the explorer reads the registry through; *registry.Client
// satisfies it. Each call returns every record of its kind (the explorer
// asks Contracts with an empty filter) in a new slice, which the explorer
// keeps and reorders, and filters in memory.
type Source interface {
	Nodes(ctx context.Context) ([]registry.Node, error)
	Farms(ctx context.Context) ([]registry.Farm, error)
	Twins(ctx context.Context) ([]registry.Twin, error)
	Contracts(ctx context.Context, filter registry.ContractFilter) ([]registry.Contract, error)
}

// Defaults of Config.
const (
	DefaultRefresh         = 5 * time.Second
	DefaultSourceTimeout   = 10 * time.Second
	DefaultPageSize        = 50
	DefaultMaxPageSize     = 1000
	defaultMaxAgeFactor    = 3
	defaultShutdownTimeout = 5 * time.Second
)

// Config tunes the explorer. Zero values take the defaults.
type Config struct {
	// Addr, when set, makes Run also serve the Handler on this address
	// ("127.0.0.1:8080"). Leave it empty to mount Handler elsewhere.
	Addr string
	// Refresh is how often Run reloads the snapshot from the Source.
	Refresh time.Duration
	// MaxAge is how old a snapshot may be before a request reloads it
	// itself (when Run is not running or the Source stalls); default
	// 3 x Refresh.
	MaxAge time.Duration
	// SourceTimeout bounds one reload from the Source.
	SourceTimeout time.Duration
	// DefaultPageSize and MaxPageSize bound the "size" query parameter.
	DefaultPageSize int
	MaxPageSize     int
	// Now is the clock used for node status and snapshot age; default
	// time.Now.
	Now func() time.Time
	// Store, when set, tells /stats whether the grid's store takes writes
	// (zgrid's embedded server).
	Store StoreChecker
}

// StoreChecker says whether the grid's store takes writes: nil, or why
// not (natsd.Server).
type StoreChecker interface {
	CheckStore() error
}

// Validate reports settings that make no sense.
func (c Config) Validate() error {
	var errs []error
	if c.Refresh < 0 {
		errs = append(errs, fmt.Errorf("refresh %s is negative", c.Refresh))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("max age %s is negative", c.MaxAge))
	}
	if c.SourceTimeout < 0 {
		errs = append(errs, fmt.Errorf("source timeout %s is negative", c.SourceTimeout))
	}
	if c.DefaultPageSize < 0 || c.MaxPageSize < 0 {
		errs = append(errs, fmt.Errorf("page sizes %d/%d are negative", c.DefaultPageSize, c.MaxPageSize))
	}
	if c.MaxPageSize > 0 && c.DefaultPageSize > c.MaxPageSize {
		errs = append(errs, fmt.Errorf("default page size %d exceeds max page size %d", c.DefaultPageSize, c.MaxPageSize))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Refresh <= 0 {
		c.Refresh = DefaultRefresh
	}
	if c.MaxAge <= 0 {
		c.MaxAge = defaultMaxAgeFactor * c.Refresh
	}
	if c.SourceTimeout <= 0 {
		c.SourceTimeout = DefaultSourceTimeout
	}
	if c.MaxPageSize <= 0 {
		c.MaxPageSize = DefaultMaxPageSize
	}
	if c.DefaultPageSize <= 0 {
		c.DefaultPageSize = min(DefaultPageSize, c.MaxPageSize)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// errNoSnapshot is returned while the registry has never been read
// successfully.
var errNoSnapshot = errors.New("registry not loaded yet")

// Explorer serves the registry snapshot over HTTP.
type Explorer struct {
	src Source
	cfg Config
	log *slog.Logger

	snap atomic.Pointer[snapshot]

	mu       sync.Mutex   // guards inflight
	inflight *refreshCall // the reload in progress, nil if none

	failures int // consecutive failed reloads; only Run's goroutine touches it
}

// refreshCall is one reload from the Source that concurrent callers share.
type refreshCall struct {
	done chan struct{}
	snap *snapshot
	err  error
}

// New returns an explorer reading src. It does not start anything: call Run
// for the refresh loop (and the HTTP server if cfg.Addr is set), or mount
// Handler and let requests load the snapshot on demand.
func New(cfg Config, src Source, log *slog.Logger) *Explorer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Explorer{
		src: src,
		cfg: cfg.withDefaults(),
		log: log.With("component", "explorer"),
	}
}

// Run reloads the snapshot every Refresh until ctx ends, and serves the
// Handler on cfg.Addr when set. It returns nil when ctx is canceled, or the
// error that stopped the HTTP server.
func (e *Explorer) Run(ctx context.Context) error {
	if e.cfg.Addr == "" {
		e.refreshLoop(ctx)
		return nil
	}
	ln, err := net.Listen("tcp", e.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", e.cfg.Addr, err)
	}
	return e.Serve(ctx, ln)
}

// Serve is Run on a listener the caller made; it closes ln.
func (e *Explorer) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		e.refreshLoop(ctx)
	}()

	srv := &http.Server{
		Handler:           e.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveErr <- srv.Serve(ln)
	}()
	e.log.Info("explorer_listening", "addr", ln.Addr().String())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serving explorer on %s: %w", ln.Addr(), err)
	}
	cancel()
	shutCtx, shutCancel := context.WithTimeout(context.Background(), defaultShutdownTimeout)
	defer shutCancel()
	if serr := srv.Shutdown(shutCtx); serr != nil && err == nil && !errors.Is(serr, http.ErrServerClosed) {
		err = fmt.Errorf("shutting down explorer: %w", serr)
	}
	wg.Wait()
	return err
}

// refreshLoop reloads at once and then every Refresh until ctx ends.
func (e *Explorer) refreshLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.Refresh)
	defer t.Stop()
	for {
		err := e.Refresh(ctx)
		e.noteRefresh(ctx, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// noteRefresh logs the first failure, every 12th after it, and the recovery.
func (e *Explorer) noteRefresh(ctx context.Context, err error) {
	switch {
	case err == nil && e.failures > 0:
		e.log.Info("registry_reload_recovered", "failures", e.failures)
		e.failures = 0
	case err != nil && ctx.Err() == nil:
		if e.failures%12 == 0 {
			e.log.Warn("registry_reload_failed", "err", err, "failures", e.failures+1)
		}
		e.failures++
	}
}

// Refresh reloads the snapshot from the Source now; canceling ctx aborts it.
func (e *Explorer) Refresh(ctx context.Context) error {
	_, err := e.refresh(ctx, false)
	return err
}

// refresh reloads the snapshot; callers that come while a reload is running
// share its result. No lock is held across the Source calls. A detached
// reload (one that requests share) is not aborted when ctx ends, only by
// SourceTimeout, so that the first request's cancellation does not fail the
// others.
func (e *Explorer) refresh(ctx context.Context, detach bool) (*snapshot, error) {
	e.mu.Lock()
	if c := e.inflight; c != nil {
		e.mu.Unlock()
		select {
		case <-c.done:
			return c.snap, c.err
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for registry reload: %w", ctx.Err())
		}
	}
	c := &refreshCall{done: make(chan struct{})}
	e.inflight = c
	e.mu.Unlock()

	lctx := ctx
	if detach {
		lctx = context.WithoutCancel(ctx)
	}
	lctx, cancel := context.WithTimeout(lctx, e.cfg.SourceTimeout)
	c.snap, c.err = e.load(lctx)
	cancel()
	if c.err == nil {
		e.snap.Store(c.snap)
	}

	e.mu.Lock()
	e.inflight = nil
	e.mu.Unlock()
	close(c.done)
	return c.snap, c.err
}

// load reads everything from the Source and indexes it.
func (e *Explorer) load(ctx context.Context) (*snapshot, error) {
	nodes, err := e.src.Nodes(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading nodes: %w", err)
	}
	farms, err := e.src.Farms(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading farms: %w", err)
	}
	twins, err := e.src.Twins(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading twins: %w", err)
	}
	contracts, err := e.src.Contracts(ctx, registry.ContractFilter{})
	if err != nil {
		return nil, fmt.Errorf("reading contracts: %w", err)
	}
	return buildSnapshot(e.cfg.Now(), nodes, farms, twins, contracts), nil
}

// current returns a snapshot no older than MaxAge, reloading if needed. A
// stale snapshot is served when the reload fails.
func (e *Explorer) current(ctx context.Context) (*snapshot, error) {
	s := e.snap.Load()
	if s != nil && e.cfg.Now().Sub(s.at) <= e.cfg.MaxAge {
		return s, nil
	}
	fresh, err := e.refresh(ctx, true)
	if err == nil {
		return fresh, nil
	}
	if s != nil {
		e.log.Warn("serving_stale_snapshot", "err", err, "age", e.cfg.Now().Sub(s.at).String())
		return s, nil
	}
	return nil, fmt.Errorf("%w: %w", errNoSnapshot, err)
}
