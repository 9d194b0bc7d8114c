package gateway

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Config bounds what clients can hold of a proxy, so that one client, or
// the clients of one tenant's name, cannot take the connections every
// tenant's gateway shares. Zero fields take the defaults.
type Config struct {
	// MaxConns bounds the connections served at once (4096); more wait
	// in the listen queue.
	MaxConns int
	// MaxConnsPerClient bounds the connections of one client address (an
	// IPv4 address, or an IPv6 /64) (128); more are closed at once.
	MaxConnsPerClient int
	// MaxConnsPerRoute bounds the connections to one route, that is one
	// tenant's name (MaxConns/4); more are closed once the name is read.
	MaxConnsPerRoute int
	// HandshakeTimeout bounds reading the ClientHello, the TLS handshake
	// and each request's header (10 s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection, kept alive or passed through, when
	// no byte moved either way for that long (2 min).
	IdleTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxConns <= 0 {
		c.MaxConns = 4096
	}
	if c.MaxConnsPerClient <= 0 {
		c.MaxConnsPerClient = 128
	}
	if c.MaxConnsPerRoute <= 0 {
		c.MaxConnsPerRoute = max(c.MaxConns/4, 1)
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 2 * time.Minute
	}
	return c
}

// clientKey is what the per-client limit counts by: the IPv4 address, or
// the /64 of an IPv6 one (a single client holds a whole /64).
func clientKey(a net.Addr) netip.Addr {
	var ip netip.Addr
	if t, ok := a.(*net.TCPAddr); ok {
		ip = t.AddrPort().Addr()
	} else if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		ip = netip.PrefixFrom(ip, 64).Masked().Addr()
	}
	return ip
}

// clients counts open connections per client key.
type clients struct {
	mu sync.Mutex // guards n
	n  map[netip.Addr]int
}

func (c *clients) acquire(k netip.Addr, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k] >= limit {
		return false
	}
	if c.n == nil {
		c.n = map[netip.Addr]int{}
	}
	c.n[k]++
	return true
}

func (c *clients) release(k netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[k]--; c.n[k] <= 0 {
		delete(c.n, k)
	}
}

// trackedConn is a client connection: it runs its release functions once
// when closed, and closes itself when no byte moved either way for idle.
type trackedConn struct {
	net.Conn
	idle time.Duration
	last atomic.Int64 // unix nanoseconds of the last read or write that moved bytes

	mu      sync.Mutex // guards closed, onClose, timer
	closed  bool
	onClose []func()
	timer   *time.Timer
}

func newTrackedConn(c net.Conn, idle time.Duration, release func()) *trackedConn {
	t := &trackedConn{Conn: c, idle: idle, onClose: []func(){release}}
	t.touch()
	t.mu.Lock()
	t.timer = time.AfterFunc(idle, t.watch)
	t.mu.Unlock()
	return t
}

func (t *trackedConn) touch() { t.last.Store(time.Now().UnixNano()) }

// watch closes the connection once idle, or waits for the rest.
func (t *trackedConn) watch() {
	since := time.Since(time.Unix(0, t.last.Load()))
	if since >= t.idle {
		t.Close()
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.closed {
		t.timer.Reset(t.idle - since)
	}
}

func (t *trackedConn) Read(b []byte) (int, error) {
	n, err := t.Conn.Read(b)
	if n > 0 {
		t.touch()
	}
	return n, err
}

func (t *trackedConn) Write(b []byte) (int, error) {
	n, err := t.Conn.Write(b)
	if n > 0 {
		t.touch()
	}
	return n, err
}

// CloseWrite half-closes when the connection can.
func (t *trackedConn) CloseWrite() error {
	if cw, ok := t.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// onClosed runs f when the connection closes (now if it is closed).
func (t *trackedConn) onClosed(f func()) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		f()
		return
	}
	t.onClose = append(t.onClose, f)
	t.mu.Unlock()
}

func (t *trackedConn) Close() error {
	err := t.Conn.Close()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return err
	}
	t.closed = true
	fs := t.onClose
	t.onClose = nil
	t.timer.Stop()
	t.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return err
}
