package zdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/resp"
)

// Server serves the 0-db protocol over one or more stores. A namespace name
// is looked up across the stores; NSNEW creates it in the store with the most
// free disk space.
type Server struct {
	cfg ServerConfig
	log *slog.Logger

	mu     sync.RWMutex // guards stores and conns
	stores []*Store
	conns  map[*conn]struct{}

	stopOnce sync.Once
	stopped  chan struct{} // closed by STOP
}

// NewServer returns a server over stores; more can be added with AddStore.
func NewServer(cfg ServerConfig, log *slog.Logger, stores ...*Store) *Server {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log.With("component", "zdb-server"), stores: stores,
		conns: map[*conn]struct{}{}, stopped: make(chan struct{})}
}

// AddStore makes the namespaces of s reachable; safe while serving.
func (srv *Server) AddStore(s *Store) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.stores = append(srv.stores, s)
}

// Stopped is closed when a client ran STOP.
func (srv *Server) Stopped() <-chan struct{} { return srv.stopped }

// find returns the namespace called name and its store.
func (srv *Server) find(name string) (*namespace, *Store) {
	srv.mu.RLock()
	defer srv.mu.RUnlock()
	for _, s := range srv.stores {
		if ns := s.lookup(name); ns != nil {
			return ns, s
		}
	}
	return nil, nil
}

func (srv *Server) storeList() []*Store {
	srv.mu.RLock()
	defer srv.mu.RUnlock()
	return append([]*Store(nil), srv.stores...)
}

// Serve accepts connections on ln until ctx is cancelled (or STOP), then
// closes the listener and every connection and returns.
func (srv *Server) Serve(ctx context.Context, ln net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-srv.stopped:
		}
		ln.Close()
		srv.mu.Lock()
		for c := range srv.conns {
			c.net.Close()
		}
		srv.mu.Unlock()
	}()
	defer wg.Wait()
	defer cancel()
	srv.log.Info("serving", "addr", ln.Addr().String())
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || isClosed(srv.stopped) {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accepting: %w", err)
			}
			// Out of file descriptors and the like: keep serving the
			// connections we have and try again.
			srv.log.Warn("accept_failed", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c := srv.newConn(ctx, nc)
		srv.mu.Lock()
		full := len(srv.conns) >= srv.cfg.MaxClients
		if !full {
			srv.conns[c] = struct{}{}
		}
		srv.mu.Unlock()
		if full {
			nc.Write([]byte("-Too many clients\r\n"))
			nc.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				srv.mu.Lock()
				delete(srv.conns, c)
				srv.mu.Unlock()
				nc.Close()
			}()
			c.serve()
		}()
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// conn is one client connection; only its goroutine touches it.
type conn struct {
	srv       *Server
	ctx       context.Context
	net       net.Conn
	r         *resp.Reader
	w         *resp.Writer
	ns        *namespace
	writable  bool
	admin     bool
	challenge string
	val       []byte    // reusable value buffer
	deadline  time.Time // write deadline set on net; see syncWriter

	// Appends not yet durable (sync always): made durable before any reply
	// leaves the process.
	syncNS  *namespace
	syncSeq uint64
	syncErr error
}

// syncWriter makes pending writes durable before replies reach the socket,
// and bounds how long a write may wait for the client to read.
type syncWriter struct{ c *conn }

func (sw syncWriter) Write(p []byte) (int, error) {
	c := sw.c
	if err := c.commitSync(); err != nil {
		return 0, err
	}
	// Every write gets between WriteTimeout and 5/4 of it. Moving the
	// deadline costs a runtime timer update, so it moves only once a
	// quarter of the timeout has passed, not on every reply.
	timeout := c.srv.cfg.WriteTimeout
	if now := time.Now(); c.deadline.Sub(now) < timeout {
		c.deadline = now.Add(timeout + timeout/4)
		c.net.SetWriteDeadline(c.deadline)
	}
	return c.net.Write(p)
}

func (srv *Server) newConn(ctx context.Context, nc net.Conn) *conn {
	c := &conn{srv: srv, ctx: ctx, net: nc, r: resp.NewReader(nc, resp.Limits{
		MaxArgs: MaxMGetKeys + 1, MaxBulk: MaxValueLen, MaxLine: 16<<10 - 2})}
	c.w = resp.NewWriter(bufio.NewWriterSize(syncWriter{c}, 16<<10))
	c.admin = srv.cfg.Admin == ""
	if stores := srv.storeList(); len(stores) > 0 {
		c.ns = stores[0].lookup(DefaultNamespace)
	}
	c.writable = !srv.cfg.Protect || c.admin
	return c
}

func (c *conn) commitSync() error {
	if c.syncErr != nil {
		return c.syncErr
	}
	if c.syncNS == nil {
		return nil
	}
	ns, seq := c.syncNS, c.syncSeq
	c.syncNS, c.syncSeq = nil, 0
	if err := ns.syncTo(seq); err != nil {
		c.srv.log.Error("sync_failed", "namespace", ns.name, "err", err)
		c.syncErr = fmt.Errorf("syncing: %w", err)
		return c.syncErr
	}
	return nil
}

// written records an append to make durable before the next reply.
func (c *conn) written(ns *namespace, seq uint64) {
	if ns.cfg.Sync != SyncAlways {
		return
	}
	if c.syncNS != nil && c.syncNS != ns {
		if err := c.commitSync(); err != nil {
			return
		}
	}
	c.syncNS, c.syncSeq = ns, seq
}

func (c *conn) serve() {
	for {
		args, err := c.r.ReadRequest()
		if err != nil {
			var pe *resp.ProtocolError
			if errors.As(err, &pe) {
				c.w.Error(pe.Msg)
				c.w.Flush()
			}
			return
		}
		if len(args) > 0 {
			c.dispatch(args)
		}
		if c.r.Buffered() == 0 {
			if err := c.w.Flush(); err != nil {
				return
			}
		}
		if c.syncErr != nil || c.ctx.Err() != nil {
			return
		}
	}
}
