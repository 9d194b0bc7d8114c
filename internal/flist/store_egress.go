package flist

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/egress"
)

// maxStoredBlock bounds a block as a store answers it: MaxBlockSize
// compressed in the worst case, encrypted, with room to spare.
const maxStoredBlock = 16 << 20

// guardedTimeout bounds one block request of a guarded store.
const guardedTimeout = 60 * time.Second

// openGuarded opens a store named by a tenant's flist (StoreOptions.Egress).
func openGuarded(u *url.URL, p *egress.Policy) (Store, error) {
	raw := redact(u.String())
	switch u.Scheme {
	case "http", "https":
		if _, err := p.CheckURL(u.String(), "http", "https"); err != nil {
			return nil, fmt.Errorf("store %s: %w", raw, err)
		}
		return &guardedHTTPStore{base: strings.TrimRight(u.String(), "/"), hc: p.Client(guardedTimeout)}, nil
	case "zdb":
		s, err := NewZDBStore(u.String())
		if err != nil {
			return nil, err
		}
		if s.network == "unix" {
			return nil, fmt.Errorf("store %s: %w: a local socket", raw, egress.ErrDenied)
		}
		if err := p.CheckHostPort(s.addr); err != nil {
			return nil, fmt.Errorf("store %s: %w", s.URL(), err)
		}
		s.dialer = p.Dialer(&net.Dialer{Timeout: 5 * time.Second})
		s.quiet = true
		return s, nil
	case "dir":
		return nil, fmt.Errorf("store %s: %w: a local store", raw, egress.ErrDenied)
	}
	return nil, fmt.Errorf("store %s: %w: scheme %q (want http, https or zdb)", raw, egress.ErrDenied, u.Scheme)
}

// guardedHTTPStore reads blocks from a hub for a tenant's flist: through
// the policy's client, one block at most maxStoredBlock, errors with the
// status code only.
type guardedHTTPStore struct {
	base string
	hc   *http.Client
}

var _ Store = (*guardedHTTPStore)(nil)

// request asks for a block at each of blockPaths in turn while the answer
// is a 404; the last answer is returned.
func (s *guardedHTTPStore) request(ctx context.Context, method string, id [HashSize]byte) (*http.Response, error) {
	var res *http.Response
	for i, p := range blockPaths(id) {
		if i > 0 {
			res.Body.Close()
		}
		req, err := http.NewRequestWithContext(ctx, method, s.base+p, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.base, err)
		}
		res, err = s.hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s: block %x: %w", s.base, id, egress.TransportError(err))
		}
		if res.StatusCode != http.StatusNotFound {
			break
		}
	}
	return res, nil
}

// Get downloads a block.
func (s *guardedHTTPStore) Get(ctx context.Context, id [HashSize]byte) ([]byte, error) {
	res, err := s.request(ctx, http.MethodGet, id)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	switch {
	case res.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%s: %x: %w", s.base, id, ErrNotFound)
	case res.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s: block %x: status %d", s.base, id, res.StatusCode)
	case res.ContentLength > maxStoredBlock:
		return nil, fmt.Errorf("%s: block %x: %d bytes, at most %d", s.base, id, res.ContentLength, maxStoredBlock)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxStoredBlock+1))
	if err != nil {
		return nil, fmt.Errorf("%s: block %x: %w", s.base, id, egress.TransportError(err))
	}
	if len(data) > maxStoredBlock {
		return nil, fmt.Errorf("%s: block %x: more than %d bytes", s.base, id, maxStoredBlock)
	}
	return data, nil
}

// Has asks whether the hub holds a block.
func (s *guardedHTTPStore) Has(ctx context.Context, id [HashSize]byte) (bool, error) {
	res, err := s.request(ctx, http.MethodHead, id)
	if err != nil {
		return false, err
	}
	res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("%s: block %x: status %d", s.base, id, res.StatusCode)
}

// Set is refused: a node only reads a tenant's stores.
func (s *guardedHTTPStore) Set(context.Context, [HashSize]byte, []byte) error {
	return fmt.Errorf("%s: read-only store", s.base)
}

// URL is the hub's base URL.
func (s *guardedHTTPStore) URL() string { return s.base }

// Close drops idle connections.
func (s *guardedHTTPStore) Close() error {
	s.hc.CloseIdleConnections()
	return nil
}
