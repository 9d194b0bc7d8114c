package zdb

import (
	"bufio"
	"context"
	"net"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/testutil"
)

func openStore(t testing.TB, dir string, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{DataDir: dir + "/data", IndexDir: dir + "/index"}
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(cfg, testutil.Logger(t))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	return s
}

func mustNS(t testing.TB, s *Store, name string) *namespace {
	t.Helper()
	ns := s.lookup(name)
	if ns == nil {
		t.Fatalf("namespace %s missing", name)
	}
	return ns
}

// startServer serves stores on a loopback port until the test ends.
func startServer(t testing.TB, cfg ServerConfig, stores ...*Store) (string, *Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(cfg, testutil.Logger(t), stores...)
	testutil.Go(t, "serving zdb", func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	return ln.Addr().String(), srv
}

// client is a minimal RESP client for tests.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReaderSize(c, 1<<20)}
}

func (c *client) send(args ...string) {
	c.t.Helper()
	b := make([][]byte, len(args))
	for i, a := range args {
		b[i] = []byte(a)
	}
	if _, err := c.c.Write(resp.AppendRequest(nil, b...)); err != nil {
		c.t.Fatalf("sending: %v", err)
	}
}

func (c *client) read() (resp.Reply, error) {
	c.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	return resp.ReadReply(c.br, resp.DefaultLimits)
}

func (c *client) do(args ...string) resp.Reply {
	c.t.Helper()
	c.send(args...)
	r, err := c.read()
	if err != nil {
		c.t.Fatalf("%q: %v", args, err)
	}
	return r
}

// expect runs a command and compares the rendered reply.
func (c *client) expect(want string, args ...string) {
	c.t.Helper()
	if got := c.do(args...).String(); got != want {
		c.t.Fatalf("%q: got %s, want %s", args, got, want)
	}
}

func fixedClock() time.Time { return time.Unix(1700000000, 0) }

func dialErr(addr string) net.Conn {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil
	}
	return c
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReaderSize(c, 1<<20) }
