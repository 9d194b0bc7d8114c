// Package gateway is the node's gateway module: a TLS front on the node's
// public address that routes by SNI to workloads' backends, either
// terminating TLS and proxying HTTP, or passing the TLS stream through.
// Backends may live in a private network: the proxy dials them from inside
// the network resource's namespace. The node wires it; its Manager
// provisions the gateway-name-proxy and gateway-fqdn-proxy workloads.
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
	"strings"
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
	Dial        DialFunc // nil: the node's own namespace
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
	proxy   *httputil.ReverseProxy
}

func (r *route) backend() string {
	return r.Backends[int(r.next.Add(1)-1)%len(r.Backends)]
}

// Proxy is the gateway's TLS front.
type Proxy struct {
	certs func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	log   *slog.Logger

	mu     sync.RWMutex
	byName map[string]*route // guarded by mu; fqdn -> route
	byWL   map[string]*route // guarded by mu; workload id -> route
}

// New returns a proxy taking its certificates from certs.
func New(certs func(*tls.ClientHelloInfo) (*tls.Certificate, error), log *slog.Logger) *Proxy {
	return &Proxy{certs: certs, log: log, byName: map[string]*route{}, byWL: map[string]*route{}}
}

// ErrNameInUse is returned when another workload serves the name.
var ErrNameInUse = errors.New("name is already served by another workload")

// Set adds or replaces the route of workload wl.
func (p *Proxy) Set(wl string, r Route) error {
	r.FQDN = strings.ToLower(r.FQDN)
	if len(r.Backends) == 0 {
		return errors.New("no backends")
	}
	if r.Dial == nil {
		d := &net.Dialer{Timeout: 10 * time.Second}
		r.Dial = d.DialContext
	}
	rt := &route{Route: r, wl: wl}
	if !r.Passthrough {
		rt.proxy = &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				u, err := url.Parse(rt.backend())
				if err == nil {
					pr.SetURL(u)
				}
				pr.SetXForwarded()
				pr.Out.Host = pr.In.Host
			},
			Transport: &http.Transport{DialContext: r.Dial, MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute},
			ErrorLog:  slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.byName[r.FQDN]; ok && o.wl != wl {
		return fmt.Errorf("%s: %w", r.FQDN, ErrNameInUse)
	}
	if o, ok := p.byWL[wl]; ok {
		delete(p.byName, o.FQDN)
		rt.in.Store(o.in.Load())
		rt.out.Store(o.out.Load())
	}
	p.byName[r.FQDN] = rt
	p.byWL[wl] = rt
	return nil
}

// Delete removes the route of workload wl.
func (p *Proxy) Delete(wl string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if o, ok := p.byWL[wl]; ok {
		delete(p.byName, o.FQDN)
		delete(p.byWL, wl)
	}
}

// Serves reports whether a route exists for name (the ACME host policy).
func (p *Proxy) Serves(name string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.byName[strings.ToLower(name)]
	return ok
}

func (p *Proxy) lookup(name string) *route {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byName[strings.ToLower(name)]
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

// MaxConns bounds the connections a proxy serves at once; more wait in
// the listen queue.
const MaxConns = 4096

// Serve accepts TLS connections on ln until ctx ends; it closes ln and
// waits for its connections.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	slots := make(chan struct{}, MaxConns)
	terminated := newChanListener(ln.Addr())
	srv := &http.Server{Handler: http.HandlerFunc(p.serveHTTP), ReadHeaderTimeout: 10 * time.Second,
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
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The slot is held until the connection ends, also a
			// terminated one (closeNotify releases it).
			p.handle(ctx, &releaseConn{Conn: c, release: func() { <-slots }}, terminated)
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

func (p *Proxy) handle(ctx context.Context, c net.Conn, terminated *chanListener) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
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
	_ = c.SetDeadline(time.Time{})
	cc := countConn{Conn: rc, r: r}
	if !r.Passthrough {
		tc := tls.Server(cc, &tls.Config{GetCertificate: p.certs, NextProtos: []string{"http/1.1", "acme-tls/1"}, MinVersion: tls.VersionTLS12})
		if !terminated.put(ctx, tc) {
			c.Close()
		}
		return
	}
	defer c.Close()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	b, err := r.Dial(dctx, "tcp", r.backend())
	cancel()
	if err != nil {
		p.log.Warn("gateway_backend_unreachable", "workload", r.wl, "err", err)
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, cc); closeWrite(b); done <- struct{}{} }()
	go func() { _, _ = io.Copy(cc, b); closeWrite(c); done <- struct{}{} }()
	select {
	case <-done:
		<-done
	case <-ctx.Done():
		c.Close()
		b.Close()
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

// releaseConn gives its slot back once, when closed.
type releaseConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *releaseConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
