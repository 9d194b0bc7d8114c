package flist

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/egress"
)

// ErrNotFound is returned by a store that does not hold a block.
var ErrNotFound = errors.New("block not found")

// Store keeps blocks by id.
type Store interface {
	Get(ctx context.Context, id [HashSize]byte) ([]byte, error)
	Set(ctx context.Context, id [HashSize]byte, data []byte) error
	Has(ctx context.Context, id [HashSize]byte) (bool, error)
	// URL names the store, without its password.
	URL() string
	Close() error
}

// Signer signs hub uploads: the twin id and its key.
type Signer interface {
	TwinID() uint32
	Sign(msg []byte) []byte
}

// StoreOptions are what opening a store by URL may need.
type StoreOptions struct {
	// Signer signs uploads to an http(s) hub; nil makes the store read-only.
	Signer Signer
	// Egress, when set, opens the stores a node reads on a tenant's behalf
	// (the routes inside a tenant's flist): no dir:// store (the node's
	// disk), http(s) and zdb stores read-only and connected only to
	// addresses the policy allows (checked after name resolution and on
	// redirects), answers bounded, and errors that carry no text of the
	// remote side.
	Egress *egress.Policy
}

// OpenStore opens a store by URL: dir://PATH, http(s)://HOST[:PORT] (a hub)
// or zdb://[PASSWORD@]HOST:PORT/NAMESPACE.
func OpenStore(rawURL string, o StoreOptions) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store url %q: %w", redact(rawURL), err)
	}
	if o.Egress != nil {
		return openGuarded(u, o.Egress)
	}
	switch u.Scheme {
	case "dir":
		p := u.Host + u.Path
		if p == "" {
			return nil, fmt.Errorf("store url %q: no directory", rawURL)
		}
		return NewDirStore(p)
	case "http", "https":
		return NewHTTPStore(rawURL, o.Signer)
	case "zdb":
		return NewZDBStore(rawURL)
	}
	return nil, fmt.Errorf("store url %q: unknown scheme %q (want dir, http, https or zdb)", redact(rawURL), u.Scheme)
}

// redact drops a password from a store URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}

// ParseRoute reads [START-END=]URL (hex bytes); a bare URL covers 00-ff.
func ParseRoute(s string) (Route, error) {
	r := Route{Start: 0, End: 0xff, URL: s}
	if i := strings.Index(s, "="); i == 5 && s[2] == '-' {
		a, err1 := strconv.ParseUint(s[0:2], 16, 8)
		b, err2 := strconv.ParseUint(s[3:5], 16, 8)
		if err1 != nil || err2 != nil || a > b {
			return r, fmt.Errorf("route %q: want START-END=URL with hex bytes", s)
		}
		r = Route{Start: byte(a), End: byte(b), URL: s[6:]}
	}
	if r.URL == "" {
		return r, fmt.Errorf("route %q: no url", s)
	}
	return r, nil
}

// DirStore keeps blocks as files under a directory: it writes DIR/ab/abcd...
// and reads that, then the flat DIR/abcd... (both layouts rfs reads).
type DirStore struct {
	dir string // absolute
}

var _ Store = (*DirStore)(nil)

// NewDirStore opens (creating) a directory store; a relative dir is taken
// from the working directory and kept absolute, so the route it writes
// (dir:///DIR) means the same directory to rfs, which reads only a dir
// URL's path.
func NewDirStore(dir string) (*DirStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	return &DirStore{dir: abs}, nil
}

// paths are where a block may be: the nested layout (written), then the
// flat one.
func (s *DirStore) paths(id [HashSize]byte) [2]string {
	h := hex.EncodeToString(id[:])
	return [2]string{filepath.Join(s.dir, h[:2], h), filepath.Join(s.dir, h)}
}

// Get reads a block.
func (s *DirStore) Get(_ context.Context, id [HashSize]byte) ([]byte, error) {
	for _, p := range s.paths(id) {
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: reading block: %w", s.URL(), err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%s: %x: %w", s.URL(), id, ErrNotFound)
}

// Has reports whether the block is there.
func (s *DirStore) Has(_ context.Context, id [HashSize]byte) (bool, error) {
	for _, p := range s.paths(id) {
		_, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		return err == nil, err
	}
	return false, nil
}

// Set writes a block (atomically; an existing block is kept).
func (s *DirStore) Set(ctx context.Context, id [HashSize]byte, data []byte) error {
	if ok, err := s.Has(ctx, id); err == nil && ok {
		return nil
	}
	return writeAtomic(s.paths(id)[0], data)
}

// URL is dir:///DIR (DIR absolute).
func (s *DirStore) URL() string { return "dir://" + s.dir }

// Close does nothing.
func (s *DirStore) Close() error { return nil }

// writeAtomic writes a block file whole (mode 0600), making its directory.
func writeAtomic(p string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("writing block: %w", err)
	}
	if err := atomicfile.WriteFile(p, data, 0o600); err != nil {
		return fmt.Errorf("writing block: %w", err)
	}
	return nil
}

// Router sends each block to the stores whose route covers the first byte
// of its id. Get tries them in order (replicas); Set writes to all.
type Router struct {
	routes []Route
	stores []Store
}

var _ Store = (*Router)(nil)

// NewRouter opens a store for each route.
func NewRouter(routes []Route, o StoreOptions) (*Router, error) {
	if len(routes) == 0 {
		return nil, errors.New("no store: give at least one route")
	}
	r := &Router{}
	for _, rt := range routes {
		s, err := OpenStore(rt.URL, o)
		if err != nil {
			r.Close()
			return nil, err
		}
		if d, ok := s.(*DirStore); ok {
			rt.URL = d.URL() // absolute: dir://relative means a host to rfs
		}
		r.routes = append(r.routes, rt)
		r.stores = append(r.stores, s)
	}
	return r, nil
}

// RouterOf routes everything to already open stores (tests, one store).
func RouterOf(stores ...Store) *Router {
	r := &Router{}
	for _, s := range stores {
		r.routes = append(r.routes, Route{Start: 0, End: 0xff, URL: s.URL()})
		r.stores = append(r.stores, s)
	}
	return r
}

// Routes returns the routes, passwords stripped, for the metadata.
func (r *Router) Routes() []Route {
	out := make([]Route, len(r.routes))
	for i, rt := range r.routes {
		out[i] = Route{Start: rt.Start, End: rt.End, URL: redact(rt.URL)}
	}
	return out
}

func (r *Router) pick(id [HashSize]byte) []Store {
	var out []Store
	for i, rt := range r.routes {
		if id[0] >= rt.Start && id[0] <= rt.End {
			out = append(out, r.stores[i])
		}
	}
	return out
}

// Get returns the block from the first store that has it.
func (r *Router) Get(ctx context.Context, id [HashSize]byte) ([]byte, error) {
	stores := r.pick(id)
	if len(stores) == 0 {
		return nil, fmt.Errorf("block %x: no route", id)
	}
	var errs []error
	for _, s := range stores {
		b, err := s.Get(ctx, id)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Has reports whether every store of the route holds the block.
func (r *Router) Has(ctx context.Context, id [HashSize]byte) (bool, error) {
	stores := r.pick(id)
	for _, s := range stores {
		ok, err := s.Has(ctx, id)
		if err != nil || !ok {
			return false, err
		}
	}
	return len(stores) > 0, nil
}

// Set writes the block to every store of its route.
func (r *Router) Set(ctx context.Context, id [HashSize]byte, data []byte) error {
	stores := r.pick(id)
	if len(stores) == 0 {
		return fmt.Errorf("block %x: no route", id)
	}
	for _, s := range stores {
		if err := s.Set(ctx, id, data); err != nil {
			return err
		}
	}
	return nil
}

// URL lists the routes.
func (r *Router) URL() string {
	var s []string
	for _, rt := range r.Routes() {
		s = append(s, rt.String())
	}
	return strings.Join(s, ",")
}

// Close closes every store.
func (r *Router) Close() error {
	var errs []error
	for _, s := range r.stores {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
