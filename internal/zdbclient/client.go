// Package zdbclient is a small 0-db client: RESP over TCP (or a unix
// socket) through internal/resp, a namespace selected with its password on
// every new connection, a pool of idle connections, a deadline on every
// call, and a broken connection dropped so the next call dials again (the
// client recovers when 0-db comes back). The flist zdb store and the qsfs
// storage engine use it.
package zdbclient

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/resp"
)

// ErrNotFound is a key the namespace does not hold.
var ErrNotFound = errors.New("key not found")

// ServerError is an error reply from 0-db; the connection stays usable.
// Msg is what the server said; with Options.Quiet, Error leaves it out
// (the client still reads it: SCAN's end is an error reply).
type ServerError struct {
	Msg   string
	quiet bool
}

func (e *ServerError) Error() string {
	if e.quiet {
		return "zdb: the server answered an error"
	}
	return "zdb: " + e.Msg
}

// Dialer opens connections; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Options of a Client. Network and Addr are required.
type Options struct {
	Network   string // "tcp" or "unix"
	Addr      string
	Namespace string // empty: the default namespace, no SELECT
	Password  string
	// Timeout bounds one call (dial excluded); 30 s when 0. A context
	// deadline that comes sooner wins.
	Timeout time.Duration
	Dialer  Dialer // nil: a net.Dialer with a 5 s timeout
	// Quiet leaves what the server said out of errors (for a tenant's
	// server, whose words must not reach our logs).
	Quiet bool
	// MaxIdle connections kept; 4 when 0.
	MaxIdle int
	// MaxValue bounds a value read; 16 MiB when 0.
	MaxValue int
}

// Client talks to one 0-db namespace. It is safe for concurrent use.
type Client struct {
	o Options

	mu   sync.Mutex // guards idle
	idle []*conn
}

type conn struct {
	c  net.Conn
	br *bufio.Reader
}

// New returns a client; it dials on first use.
func New(o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.MaxIdle <= 0 {
		o.MaxIdle = 4
	}
	if o.MaxValue <= 0 {
		o.MaxValue = 16 << 20
	}
	if o.Dialer == nil {
		o.Dialer = &net.Dialer{Timeout: 5 * time.Second}
	}
	return &Client{o: o}
}

// Options returns the client's options.
func (c *Client) Options() Options { return c.o }

// String names the server and namespace, without the password.
func (c *Client) String() string {
	if c.o.Network == "unix" {
		return "zdb://" + c.o.Addr
	}
	return "zdb://" + c.o.Addr + "/" + c.o.Namespace
}

// get returns an idle connection (pooled true) or a new one.
func (c *Client) get(ctx context.Context, fresh bool) (cn *conn, pooled bool, err error) {
	c.mu.Lock()
	if n := len(c.idle); n > 0 && !fresh {
		cn := c.idle[n-1]
		c.idle = c.idle[:n-1]
		c.mu.Unlock()
		return cn, true, nil
	}
	c.mu.Unlock()
	cn, err = c.dial(ctx)
	return cn, false, err
}

func (c *Client) dial(ctx context.Context) (*conn, error) {
	nc, err := c.o.Dialer.DialContext(ctx, c.o.Network, c.o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c, err)
	}
	cn := &conn{c: nc, br: bufio.NewReaderSize(nc, 64<<10)}
	if c.o.Namespace != "" {
		args := [][]byte{[]byte("SELECT"), []byte(c.o.Namespace)}
		if c.o.Password != "" {
			args = append(args, []byte(c.o.Password))
		}
		if _, err := c.do(ctx, cn, args...); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%s: selecting namespace: %w", c, err)
		}
	}
	return cn, nil
}

func (c *Client) put(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.idle) < c.o.MaxIdle {
		c.idle = append(c.idle, cn)
		return
	}
	cn.c.Close()
}

func (c *Client) do(ctx context.Context, cn *conn, args ...[]byte) (resp.Reply, error) {
	dl := time.Now().Add(c.o.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	_ = cn.c.SetDeadline(dl)
	if _, err := cn.c.Write(resp.AppendRequest(nil, args...)); err != nil {
		return resp.Reply{}, err
	}
	r, err := resp.ReadReply(cn.br, resp.Limits{MaxBulk: c.o.MaxValue, MaxArgs: 64})
	if err != nil {
		return r, err
	}
	if r.Kind == resp.KindError {
		return r, &ServerError{Msg: string(r.Str), quiet: c.o.Quiet}
	}
	return r, nil
}

// Do runs one command on a pooled connection. An error reply comes back as
// a *ServerError and keeps the connection; a transport error drops it. A
// pooled connection the server closed meanwhile (it restarted) is retried
// once on a new connection; the commands this client sends are idempotent.
func (c *Client) Do(ctx context.Context, args ...[]byte) (resp.Reply, error) {
	if err := ctx.Err(); err != nil {
		return resp.Reply{}, err
	}
	cn, pooled, err := c.get(ctx, false)
	if err != nil {
		return resp.Reply{}, err
	}
	r, err := c.do(ctx, cn, args...)
	var serr *ServerError
	var nerr net.Error
	if err != nil && pooled && !errors.As(err, &serr) && !(errors.As(err, &nerr) && nerr.Timeout()) && ctx.Err() == nil {
		cn.c.Close()
		if cn, _, err = c.get(ctx, true); err != nil {
			return resp.Reply{}, err
		}
		r, err = c.do(ctx, cn, args...)
	}
	if err != nil && !errors.As(err, &serr) {
		cn.c.Close()
		return r, fmt.Errorf("%s: %s: %w", c, args[0], err)
	}
	c.put(cn)
	if err != nil {
		return r, fmt.Errorf("%s: %s: %w", c, args[0], err)
	}
	return r, nil
}

// Ping checks the server answers (and, on a new connection, that the
// namespace and password are accepted).
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Do(ctx, []byte("PING"))
	return err
}

// Get reads a value; ErrNotFound when the key is absent.
func (c *Client) Get(ctx context.Context, key []byte) ([]byte, error) {
	r, err := c.Do(ctx, []byte("GET"), key)
	if err != nil {
		return nil, err
	}
	if r.Nil || r.Kind != resp.KindBulk {
		return nil, fmt.Errorf("%s: %q: %w", c, key, ErrNotFound)
	}
	return r.Str, nil
}

// Set writes a value under key (user mode).
func (c *Client) Set(ctx context.Context, key, value []byte) error {
	_, err := c.Do(ctx, []byte("SET"), key, value)
	return err
}

// Del removes a key; an absent key is not an error.
func (c *Client) Del(ctx context.Context, key []byte) error {
	_, err := c.Do(ctx, []byte("DEL"), key)
	var serr *ServerError
	if errors.As(err, &serr) && bytes.Contains(bytes.ToLower([]byte(serr.Msg)), []byte("not found")) {
		return nil
	}
	return err
}

// Exists reports whether key is held.
func (c *Client) Exists(ctx context.Context, key []byte) (bool, error) {
	r, err := c.Do(ctx, []byte("EXISTS"), key)
	if err != nil {
		return false, err
	}
	return r.Int == 1, nil
}

// Scan returns the keys after cursor (nil: from the start) and the cursor
// of the next page; done is true when there is nothing after this page.
func (c *Client) Scan(ctx context.Context, cursor []byte) (keys [][]byte, next []byte, done bool, err error) {
	args := [][]byte{[]byte("SCAN")}
	if cursor != nil {
		args = append(args, cursor)
	}
	r, err := c.Do(ctx, args...)
	var serr *ServerError
	if errors.As(err, &serr) && bytes.Contains(bytes.ToLower([]byte(serr.Msg)), []byte("no more data")) {
		return nil, nil, true, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	if r.Kind != resp.KindArray || len(r.Elems) != 2 || r.Elems[1].Kind != resp.KindArray {
		return nil, nil, false, fmt.Errorf("%s: SCAN: unexpected reply %s", c, r)
	}
	for _, e := range r.Elems[1].Elems {
		if e.Kind != resp.KindArray || len(e.Elems) == 0 || e.Elems[0].Kind != resp.KindBulk {
			return nil, nil, false, fmt.Errorf("%s: SCAN: unexpected entry %s", c, e)
		}
		keys = append(keys, e.Elems[0].Str)
	}
	return keys, r.Elems[0].Str, false, nil
}

// Close drops the idle connections; a later call dials again.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cn := range c.idle {
		cn.c.Close()
	}
	c.idle = nil
	return nil
}
