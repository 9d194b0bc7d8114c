package flist

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/zdbclient"
)

// ZDBStore keeps blocks in a 0-db namespace (user mode, key = id), through
// the shared 0-db client (internal/zdbclient): a small pool of RESP
// connections where a broken one is dropped and the next call dials again,
// so the store recovers when 0-db comes back.
type ZDBStore struct {
	network            string // "tcp", or "unix" for zdb:///SOCKET
	addr, ns, password string
	timeout            time.Duration
	dialer             *net.Dialer // nil: a plain dialer
	quiet              bool        // errors leave out what the server said

	once sync.Once // makes c from the fields above on first use
	c    *zdbclient.Client
}

var _ Store = (*ZDBStore)(nil)

// NewZDBStore parses zdb://[PASSWORD@]HOST:PORT[/NAMESPACE] or, as rfs
// does, zdb:///PATH (a unix socket, the default namespace); it dials on
// first use.
func NewZDBStore(raw string) (*ZDBStore, error) {
	u, err := url.Parse(raw)
	if err == nil && u.Scheme == "zdb" && u.Host == "" && u.User == nil && strings.HasPrefix(u.Path, "/") && len(u.Path) > 1 {
		return &ZDBStore{network: "unix", addr: u.Path, timeout: 30 * time.Second}, nil
	}
	if err != nil || u.Scheme != "zdb" || u.Host == "" {
		return nil, fmt.Errorf("store url %q: want zdb://[password@]host:port/namespace or zdb:///socket", redact(raw))
	}
	s := &ZDBStore{network: "tcp", addr: u.Host, ns: strings.Trim(u.Path, "/"), timeout: 30 * time.Second}
	if u.Port() == "" {
		s.addr = net.JoinHostPort(u.Hostname(), strconv.Itoa(resp.ZDBPort))
	}
	if u.User != nil {
		s.password = u.User.Username()
		if p, ok := u.User.Password(); ok {
			s.password = p
		}
	}
	return s, nil
}

// URL is the store's URL without the password.
func (s *ZDBStore) URL() string {
	if s.network == "unix" {
		return "zdb://" + s.addr
	}
	return "zdb://" + s.addr + "/" + s.ns
}

func (s *ZDBStore) client() *zdbclient.Client {
	s.once.Do(func() {
		o := zdbclient.Options{Network: s.network, Addr: s.addr, Namespace: s.ns, Password: s.password,
			Timeout: s.timeout, Quiet: s.quiet}
		if s.dialer != nil {
			o.Dialer = s.dialer
		}
		s.c = zdbclient.New(o)
	})
	return s.c
}

// Get reads a block.
func (s *ZDBStore) Get(ctx context.Context, id [HashSize]byte) ([]byte, error) {
	b, err := s.client().Get(ctx, id[:])
	if errors.Is(err, zdbclient.ErrNotFound) {
		return nil, fmt.Errorf("%s: %x: %w", s.URL(), id, ErrNotFound)
	}
	return b, err
}

// Has reports whether the block is there.
func (s *ZDBStore) Has(ctx context.Context, id [HashSize]byte) (bool, error) {
	return s.client().Exists(ctx, id[:])
}

// Set writes a block.
func (s *ZDBStore) Set(ctx context.Context, id [HashSize]byte, data []byte) error {
	return s.client().Set(ctx, id[:], data)
}

// Close drops the idle connections.
func (s *ZDBStore) Close() error {
	return s.client().Close()
}
