// Package gateway is the node's gateway module: a TLS front on the node's
// public address that routes by SNI to workloads' backends, either
// terminating TLS and proxying HTTP, or passing the TLS stream through.
// Backends may live in a private network: the proxy dials them from inside
// the network resource's namespace. The node wires it; its Manager
// provisions the gateway-name-proxy and gateway-fqdn-proxy workloads.
//
// The internet reaches whatever the gateway dials, so backends are checked
// (BackendPolicy) when provisioned and on every dial; names are compared
// in one normalised spelling (Normalize); connections are bounded per
// client, per route and in all, with handshake and idle timeouts (Config);
// ACME certificates are per twin and removed with their route (ACME).
package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/sys/netns"
)

// DialFunc dials a backend.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Route sends the TLS connections for FQDN to Backends.
type Route struct {
	FQDN        string
	Backends    []string // "http://ip:port", or "ip:port" with Passthrough
	Passthrough bool
	Dial        DialFunc // nil: the caller's namespace, unchecked (the Manager always sets a checking one)
	// Twin owns the route: its certificates are the twin's.
	Twin uint32
}

// Traffic counts a workload's bytes.
type Traffic struct {
	In  uint64 `json:"in"`  // from clients
	Out uint64 `json:"out"` // to clients
}

type route struct {
	Route
	wl      string
	next    atomic.Uint64 // round robin
	in, out atomic.Uint64
	conns   *atomic.Int64 // open connections, kept across replacements
	paused  atomic.Bool   // not served (its contract's grace period); the name stays held
	proxy   *httputil.ReverseProxy
	tr      *http.Transport
}

func (r *route) backend() string {
	return r.Backends[int(r.next.Add(1)-1)%len(r.Backends)]
}

// Certs gives the proxy the certificates of the names it terminates.
type Certs interface {
	// Certificate returns the certificate for the hello's server name,
	// a name of twin's route.
	Certificate(h *tls.ClientHelloInfo, twin uint32) (*tls.Certificate, error)
	// Forget drops what is held for twin's name: its route is gone.
	Forget(twin uint32, name string)
}

// Proxy is the gateway's TLS front.
type Proxy struct {
	cfg     Config
	certs   Certs
	log     *slog.Logger
	clients clients

	mu     sync.RWMutex
	byName map[string]*route // guarded by mu; fqdn -> route
	byWL   map[string]*route // guarded by mu; workload id -> route
}

// New returns a proxy with limits cfg taking its certificates from certs.
func New(cfg Config, certs Certs, log *slog.Logger) *Proxy {
	return &Proxy{cfg: cfg.withDefaults(), certs: certs, log: log, byName: map[string]*route{}, byWL: map[string]*route{}}
}

// ErrNameInUse is returned when another workload serves the name.
var ErrNameInUse = errors.New("name is already served by another workload")

// Set adds or replaces the route of workload wl.
func (p *Proxy) Set(wl string, r Route) error {
	fqdn, err := Normalize(r.FQDN)
	if err != nil {
		return err
	}
	r.FQDN = fqdn
	if len(r.Backends) == 0 {
		return errors.New("no backends")
	}
	if r.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		r.Dial = d.DialContext
	}
	rt := &route{Route: r, wl: wl, conns: new(atomic.Int64)}
	if !r.Passthrough {
		rt.tr = &http.Transport{DialContext: r.Dial, MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}
		rt.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				u, err := url.Parse(rt.backend())
				if err == nil {
					pr.SetURL(u)
				}
				pr.SetXForwarded()
				pr.Out.Host = pr.In.Host
			},
			Transport: rt.tr,
			ErrorLog:  slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		}
	}
	p.mu.Lock()
	if o, ok := p.byName[r.FQDN]; ok && o.wl != wl {
		p.mu.Unlock()
		return fmt.Errorf("%s: %w", r.FQDN, ErrNameInUse)
	}
	o, replaced := p.byWL[wl]
	if replaced {
		delete(p.byName, o.FQDN)
		rt.in.Store(o.in.Load())
		rt.out.Store(o.out.Load())
		rt.conns = o.conns
		rt.paused.Store(o.paused.Load())
	}
	p.byName[r.FQDN] = rt
	p.byWL[wl] = rt
	p.mu.Unlock()
	if replaced {
		p.retire(o, o.FQDN != rt.FQDN || o.Twin != rt.Twin)
	}
	return nil
}

// Delete removes the route of workload wl and forgets its certificate.
func (p *Proxy) Delete(wl string) {
	p.mu.Lock()
	o, ok := p.byWL[wl]
	if ok {
		delete(p.byName, o.FQDN)
		delete(p.byWL, wl)
	}
	p.mu.Unlock()
	if ok {
		p.retire(o, true)
	}
}

// retire lets go of a replaced or removed route: its idle backend
// connections and, when its name or owner changed, its certificate.
func (p *Proxy) retire(o *route, forget bool) {
	if o.tr != nil {
		o.tr.CloseIdleConnections()
	}
	if forget && p.certs != nil {
		p.certs.Forget(o.Twin, o.FQDN)
	}
}

// ErrNoRoute is returned for a workload that has no route.
var ErrNoRoute = errors.New("no route")

// SetPaused stops serving the route of workload wl (its contract's grace
// period: new connections and requests for its name are refused as for
// an unknown name) or serves it again. A paused route keeps its name: no
// other workload can take it meanwhile.
func (p *Proxy) SetPaused(wl string, paused bool) error {
	p.mu.RLock()
	r, ok := p.byWL[wl]
	p.mu.RUnlock()
	if !ok {
		return fmt.Errorf("workload %s: %w", wl, ErrNoRoute)
	}
	r.paused.Store(paused)
	return nil
}

// Serves reports whether a route exists for name and is served.
func (p *Proxy) Serves(name string) bool { return p.lookup(name) != nil }

// lookup returns the served route of name (nil: none, or paused).
func (p *Proxy) lookup(name string) *route {
	n := hostName(name)
	if n == "" {
		return nil
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if r := p.byName[n]; r != nil && !r.paused.Load() {
		return r
	}
	return nil
}

// Metrics returns the bytes counted per workload.
func (p *Proxy) Metrics() map[string]Traffic {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := map[string]Traffic{}
	for wl, r := range p.byWL {
		out[wl] = Traffic{In: r.in.Load(), Out: r.out.Load()}
	}
	return out
}

// Serve accepts TLS connections on ln until ctx ends; it closes ln and
// waits for its connections. Connections are bounded as cfg says.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	slots := make(chan struct{}, p.cfg.MaxConns)
	terminated := newChanListener(ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(p.serveHTTP),
		ReadHeaderTimeout: p.cfg.HandshakeTimeout, IdleTimeout: p.cfg.IdleTimeout,
		ErrorLog: slog.NewLogLogger(p.log.Handler(), slog.LevelDebug)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(terminated)
	}()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var err error
	var backoff time.Duration
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			err = ctx.Err()
			break
		}
		var c net.Conn
		c, err = ln.Accept()
		if err != nil {
			<-slots
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				break
			}
			// Out of file descriptors and the like: wait, as
			// net/http does, rather than stop every tenant's gateway.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("gateway_accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		key := clientKey(c.RemoteAddr())
		if !p.clients.acquire(key, p.cfg.MaxConnsPerClient) {
			p.log.Debug("gateway_client_limit", "client", key)
			c.Close()
			<-slots
			continue
		}
		// The slot is held until the connection ends, also a terminated
		// one (the HTTP server closes it).
		tc := newTrackedConn(c, p.cfg.IdleTimeout, func() {
			p.clients.release(key)
			<-slots
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.handle(ctx, tc, terminated)
		}()
	}
	ln.Close()
	terminated.Close()
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(shut)
	cancel()
	_ = srv.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("accepting gateway connections: %w", err)
}

// errHello stops the handshake once the ClientHello is read.
var errHello = errors.New("client hello read")

// peekSNI reads the ClientHello of c and returns the server name and a
// connection that replays what was read.
func peekSNI(c net.Conn) (string, net.Conn, error) {
	var buf bytes.Buffer
	var name string
	err := tls.Server(recordConn{Conn: c, r: io.TeeReader(c, &buf)}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name = h.ServerName
			return nil, errHello
		},
	}).Handshake()
	if !errors.Is(err, errHello) {
		return "", nil, fmt.Errorf("reading the client hello: %w", err)
	}
	return name, replayConn{Conn: c, r: io.MultiReader(&buf, c)}, nil
}

// recordConn reads through r and never writes (the peek must not answer).
type recordConn struct {
	net.Conn
	r io.Reader
}

func (c recordConn) Read(b []byte) (int, error)  { return c.r.Read(b) }
func (c recordConn) Write(b []byte) (int, error) { return len(b), nil }

type replayConn struct {
	net.Conn
	r io.Reader
}

func (c replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// countConn counts a route's bytes.
type countConn struct {
	net.Conn
	r *route
}

func (c countConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.r.in.Add(uint64(n))
	return n, err
}

func (c countConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.r.out.Add(uint64(n))
	return n, err
}

func (p *Proxy) handle(ctx context.Context, c *trackedConn, terminated *chanListener) {
	_ = c.SetDeadline(time.Now().Add(p.cfg.HandshakeTimeout))
	name, rc, err := peekSNI(c)
	if err != nil {
		p.log.Debug("gateway_bad_hello", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	r := p.lookup(name)
	if r == nil {
		p.log.Debug("gateway_unknown_name", "name", name)
		c.Close()
		return
	}
	if r.conns.Add(1) > int64(p.cfg.MaxConnsPerRoute) {
		r.conns.Add(-1)
		p.log.Debug("gateway_route_limit", "workload", r.wl)
		c.Close()
		return
	}
	c.onClosed(func() { r.conns.Add(-1) })
	cc := countConn{Conn: rc, r: r}
	if !r.Passthrough {
		// The HTTP server bounds the handshake and each request header
		// (ReadHeaderTimeout), then idle keep-alive (IdleTimeout).
		twin := r.Twin
		tc := tls.Server(cc, &tls.Config{
			GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return p.certs.Certificate(h, twin) },
			NextProtos:     []string{"http/1.1", "acme-tls/1"}, MinVersion: tls.VersionTLS12})
		if !terminated.put(ctx, tc) {
			c.Close()
		}
		return
	}
	_ = c.SetDeadline(time.Time{})
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, p.cfg.HandshakeTimeout)
	b, err := r.Dial(dctx, "tcp", r.backend())
	cancel()
	if err != nil {
		p.log.Warn("gateway_backend_unreachable", "workload", r.wl, "err", err)
		return
	}
	// Closing the client connection, also when it was idle too long,
	// closes the backend's.
	c.onClosed(func() { b.Close() })
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, cc); closeWrite(b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(cc, b); closeWrite(c); done <- struct{}{} }()
	select {
	case <-done:
		<-done
	case <-ctx.Done():
		c.Close()
		<-done
		<-done
	}
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

func (p *Proxy) serveHTTP(w http.ResponseWriter, req *http.Request) {
	// The connection came in for the SNI's route: the Host header does
	// not choose another tenant's.
	name := req.Host
	if req.TLS != nil && req.TLS.ServerName != "" {
		name = req.TLS.ServerName
	}
	r := p.lookup(name)
	if r == nil || r.proxy == nil {
		http.Error(w, "unknown name", http.StatusMisdirectedRequest)
		return
	}
	r.proxy.ServeHTTP(w, req)
}

// chanListener hands terminated connections to the HTTP server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) put(ctx context.Context, c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// Listen listens on addr inside namespace ns ("" for the caller's).
func Listen(ns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening for the gateway on %s in namespace %q: %w", addr, ns, err)
	}
	return ln, nil
}
