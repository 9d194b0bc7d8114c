package rmb

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/testutil"
)

// mapResolver is a registry of twin keys held in memory.
type mapResolver struct {
	mu    sync.Mutex // guards keys and calls
	keys  map[uint32]ed25519.PublicKey
	calls int
}

func newMapResolver() *mapResolver { return &mapResolver{keys: make(map[uint32]ed25519.PublicKey)} }

func (r *mapResolver) TwinKey(_ context.Context, twin uint32) (ed25519.PublicKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	k, ok := r.keys[twin]
	if !ok {
		return nil, fmt.Errorf("twin %d not found", twin)
	}
	return k, nil
}

func (r *mapResolver) set(twin uint32, pub ed25519.PublicKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys[twin] = pub
}

func (r *mapResolver) lookup(pub ed25519.PublicKey) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, k := range r.keys {
		if k.Equal(pub) {
			return id, true
		}
	}
	return 0, false
}

// testGrid is an embedded NATS server with the twin authenticator, a
// registry of twin keys and a system key.
type testGrid struct {
	url      string
	srv      *server.Server
	twins    *server.Account // the account of twin connections
	dir      string          // JetStream store
	resolver *mapResolver
	system   identity.Key
}

// testServices are the grid-account subjects the twin account imports in
// these tests (the registry's, in zgrid).
var testServices = []string{TwinCreateSubject, "registry.farm.create", "registry.twin.get"}

// TestNATS is what the tests need to start the grid's NATS server:
// internal/natsd with its twin authenticator. natsd imports this package,
// so its own tests cannot: TestMain (natsd_test.go, package rmb_test) sets
// StartNATS.
type TestNATS struct {
	Dir    string // JetStream store
	Port   int    // 0: a free port
	Lookup func(pub ed25519.PublicKey) (twin uint32, ok bool)
	System []ed25519.PublicKey
	// Services are the grid-account subjects the twin account imports.
	Services []string
}

// StartNATS starts the server of cfg until the test ends; it returns the
// server, its client URL and the account of the twins. Set by TestMain.
var StartNATS func(t testing.TB, cfg TestNATS) (srv *server.Server, url string, twins *server.Account)

func newTestGrid(t testing.TB) *testGrid {
	t.Helper()
	sys := mustKey(t)
	g := &testGrid{resolver: newMapResolver(), system: sys, dir: t.TempDir()}
	g.start(t, 0)
	return g
}

// start starts (or restarts, on the same store) the server on port.
func (g *testGrid) start(t testing.TB, port int) {
	t.Helper()
	g.srv, g.url, g.twins = StartNATS(t, TestNATS{
		Dir:      g.dir,
		Port:     port,
		Lookup:   g.resolver.lookup,
		System:   []ed25519.PublicKey{g.system.Public()},
		Services: testServices,
	})
}

func mustKey(t testing.TB) identity.Key {
	t.Helper()
	k, err := identity.Generate()
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	return k
}

// twin registers a new twin and returns its key.
func (g *testGrid) twin(t testing.TB, id uint32) identity.Key {
	t.Helper()
	k := mustKey(t)
	g.resolver.set(id, k.Public())
	return k
}

// errCollector records a connection's asynchronous errors.
type errCollector struct {
	mu   sync.Mutex // guards errs
	errs []error
	ch   chan error
}

func newErrCollector() *errCollector { return &errCollector{ch: make(chan error, 100)} }

func (e *errCollector) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	e.mu.Lock()
	e.errs = append(e.errs, err)
	e.mu.Unlock()
	select {
	case e.ch <- err:
	default:
	}
}

// wait returns the next asynchronous error, or nil after d.
func (e *errCollector) wait(d time.Duration) error {
	select {
	case err := <-e.ch:
		return err
	case <-time.After(d):
		return nil
	}
}

func (g *testGrid) connect(t testing.TB, key identity.Key, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := Connect(g.url, key, opts...)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serve runs a Server for twin until the test ends.
func (g *testGrid) serve(t testing.TB, twin uint32, key identity.Key, handlers map[string]HandlerFunc, opts ...Option) *Server {
	t.Helper()
	nc := g.connect(t, key)
	s := NewServer(nc, twin, key, g.resolver, testutil.Logger(t), opts...)
	for cmd, h := range handlers {
		s.Handle(cmd, h)
	}
	testutil.Go(t, fmt.Sprintf("the server of twin %d", twin), s.Serve)
	// Wait until the subscription is visible to others.
	testutil.Eventually(t, 5*time.Second, fmt.Sprintf("the server of twin %d to subscribe", twin), func() (bool, error) {
		return g.srv.NumSubscriptions() > 0 && g.hasSubscriber(t, RequestSubject(twin)), nil
	})
	return s
}

func (g *testGrid) hasSubscriber(t testing.TB, subject string) bool {
	t.Helper()
	return g.twins.Interest(subject) > 0
}
