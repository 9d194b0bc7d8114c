package flist

import (
	"bufio"
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
)

// ZDBStore keeps blocks in a 0-db namespace (user mode, key = id), over a
// small pool of RESP connections. A broken connection is dropped and the
// next call dials again, so the store recovers when 0-db comes back.
type ZDBStore struct {
	network            string // "tcp", or "unix" for zdb:///SOCKET
	addr, ns, password string
	timeout            time.Duration
	dialer             *net.Dialer // nil: a plain dialer
	quiet              bool        // errors leave out what the server said

	mu   sync.Mutex // guards idle
	idle []*zdbConn
}

var _ Store = (*ZDBStore)(nil)

type zdbConn struct {
	c  net.Conn
	br *bufio.Reader
}

const zdbMaxIdle = 4

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

func (s *ZDBStore) get(ctx context.Context) (*zdbConn, error) {
	s.mu.Lock()
	if n := len(s.idle); n > 0 {
		c := s.idle[n-1]
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		return c, nil
	}
	s.mu.Unlock()
	d := s.dialer
	if d == nil {
		d = &net.Dialer{Timeout: 5 * time.Second}
	}
	nc, err := d.DialContext(ctx, s.network, s.addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.URL(), err)
	}
	c := &zdbConn{c: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	if s.ns != "" {
		args := [][]byte{[]byte("SELECT"), []byte(s.ns)}
		if s.password != "" {
			args = append(args, []byte(s.password))
		}
		if _, err := s.do(ctx, c, args...); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%s: selecting namespace: %w", s.URL(), err)
		}
	}
	return c, nil
}

func (s *ZDBStore) put(c *zdbConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.idle) < zdbMaxIdle {
		s.idle = append(s.idle, c)
		return
	}
	c.c.Close()
}

func (s *ZDBStore) do(ctx context.Context, c *zdbConn, args ...[]byte) (resp.Reply, error) {
	dl := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = c.c.SetDeadline(dl)
	if _, err := c.c.Write(resp.AppendRequest(nil, args...)); err != nil {
		return resp.Reply{}, err
	}
	r, err := resp.ReadReply(c.br, resp.Limits{MaxBulk: 16 << 20, MaxArgs: 16})
	if err != nil {
		return r, err
	}
	if r.Kind == resp.KindError {
		if s.quiet {
			return r, &zdbError{msg: "the server answered an error"}
		}
		return r, &zdbError{msg: string(r.Str)}
	}
	return r, nil
}

type zdbError struct{ msg string }

func (e *zdbError) Error() string { return "zdb: " + e.msg }

// call runs one command on a pooled connection; the connection is dropped on
// a transport error.
func (s *ZDBStore) call(ctx context.Context, args ...[]byte) (resp.Reply, error) {
	c, err := s.get(ctx)
	if err != nil {
		return resp.Reply{}, err
	}
	r, err := s.do(ctx, c, args...)
	var zerr *zdbError
	if err != nil && !errors.As(err, &zerr) {
		c.c.Close()
		return r, fmt.Errorf("%s: %s: %w", s.URL(), args[0], err)
	}
	s.put(c)
	if err != nil {
		return r, fmt.Errorf("%s: %s: %w", s.URL(), args[0], err)
	}
	return r, nil
}

// Get reads a block.
func (s *ZDBStore) Get(ctx context.Context, id [HashSize]byte) ([]byte, error) {
	r, err := s.call(ctx, []byte("GET"), id[:])
	if err != nil {
		return nil, err
	}
	if r.Nil || r.Kind != resp.KindBulk {
		return nil, fmt.Errorf("%s: %x: %w", s.URL(), id, ErrNotFound)
	}
	return r.Str, nil
}

// Has reports whether the block is there.
func (s *ZDBStore) Has(ctx context.Context, id [HashSize]byte) (bool, error) {
	r, err := s.call(ctx, []byte("EXISTS"), id[:])
	if err != nil {
		return false, err
	}
	return r.Int == 1, nil
}

// Set writes a block.
func (s *ZDBStore) Set(ctx context.Context, id [HashSize]byte, data []byte) error {
	_, err := s.call(ctx, []byte("SET"), id[:], data)
	return err
}

// Close drops the idle connections.
func (s *ZDBStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.idle {
		c.c.Close()
	}
	s.idle = nil
	return nil
}
