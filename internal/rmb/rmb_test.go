package rmb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/testutil"
)

type echoReq struct {
	Msg string `json:"msg"`
}

type echoResp struct {
	Msg string `json:"msg"`
	Src uint32 `json:"src"`
}

func echo(_ context.Context, src uint32, payload []byte) (any, error) {
	var r echoReq
	if err := json.Unmarshal(payload, &r); err != nil {
		return nil, fmt.Errorf("decoding request: %w", err)
	}
	return echoResp{Msg: r.Msg, Src: src}, nil
}

func failing(context.Context, uint32, []byte) (any, error) {
	return nil, errors.New("disk on fire")
}

func coded(context.Context, uint32, []byte) (any, error) {
	return nil, &RemoteError{Code: 422, Message: "deployment invalid"}
}

func panicking(context.Context, uint32, []byte) (any, error) {
	panic("handler bug")
}

// setup returns a grid with a server on twin 2 and a client of twin 1.
func setup(t *testing.T, opts ...Option) (*testGrid, *Client, *Server) {
	t.Helper()
	g := newTestGrid(t)
	k1 := g.twin(t, 1)
	k2 := g.twin(t, 2)
	s := g.serve(t, 2, k2, map[string]HandlerFunc{
		"test.echo":  echo,
		"test.fail":  failing,
		"test.coded": coded,
		"test.panic": panicking,
	}, opts...)
	c := NewClient(g.connect(t, k1), 1, k1, g.resolver, opts...)
	return g, c, s
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestRoundTrip(t *testing.T) {
	_, c, _ := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)

	var got echoResp
	if err := c.Call(ctx, 2, "test.echo", echoReq{Msg: "hello"}, &got); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if want := (echoResp{Msg: "hello", Src: 1}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// nil resp discards the result.
	if err := c.Call(ctx, 2, "test.echo", echoReq{Msg: "x"}, nil); err != nil {
		t.Errorf("Call with nil resp: %v", err)
	}

	tests := []struct {
		name     string
		cmd      string
		code     int
		sentinel error
		message  string
	}{
		{"unknown command", "test.nope", CodeUnknownCommand, ErrUnknownCommand, `unknown command "test.nope"`},
		{"handler error", "test.fail", CodeHandler, nil, "disk on fire"},
		{"handler remote error", "test.coded", 422, nil, "deployment invalid"},
		{"handler panic", "test.panic", CodeHandler, nil, "handler failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Call(ctx, 2, tt.cmd, echoReq{}, nil)
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RemoteError", err)
			}
			if re.Code != tt.code || !strings.Contains(re.Message, tt.message) {
				t.Errorf("got %d %q, want %d containing %q", re.Code, re.Message, tt.code, tt.message)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
		})
	}
}

func TestCallErrors(t *testing.T) {
	g, c, _ := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)

	// A twin the registry does not know.
	if err := c.Call(ctx, 99, "test.echo", echoReq{}, nil); err == nil || !strings.Contains(err.Error(), "resolving twin 99") {
		t.Errorf("call to unknown twin: got %v, want a resolving error", err)
	}
	// A registered twin with no server.
	g.twin(t, 3)
	if err := c.Call(ctx, 3, "test.echo", echoReq{}, nil); !errors.Is(err, ErrUnreachable) {
		t.Errorf("call to twin without server: got %v, want ErrUnreachable", err)
	}
	// Too large to send: refused before it leaves.
	big := echoReq{Msg: strings.Repeat("a", DefaultMaxPayload)}
	if err := c.Call(ctx, 2, "test.echo", big, nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized call: got %v, want ErrTooLarge", err)
	}
	// A bad command name.
	if err := c.Call(ctx, 2, strings.Repeat("c", 300), echoReq{}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("long command: got %v, want ErrMalformed", err)
	}
	// A request that cannot be encoded.
	if err := c.Call(ctx, 2, "test.echo", make(chan int), nil); err == nil || !strings.Contains(err.Error(), "encoding request") {
		t.Errorf("unencodable request: got %v, want an encoding error", err)
	}
}

// rawRequest builds a signed, sealed request from c as Call would, after
// letting mutate change the envelope before sealing and signing.
func rawRequest(t *testing.T, c *Client, dst uint32, cmd string, req any, mutate func(*Envelope)) (*Envelope, []byte) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.peers.get(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	env := &Envelope{Kind: KindRequest, Flags: FlagSealed, ID: id, Src: c.twin, Dst: dst,
		Timestamp: time.Now(), TTL: 10 * time.Second, Command: cmd}
	if mutate != nil {
		mutate(env)
	}
	if env.Flags&FlagSealed != 0 {
		if env.Payload, err = seal(p.aead, env.header(), body); err != nil {
			t.Fatal(err)
		}
	} else {
		env.Payload = body
	}
	wire, err := env.Sign(c.key)
	if err != nil {
		t.Fatal(err)
	}
	return env, wire
}

// send sends raw bytes to twin dst's inbox and reads the answer as c would.
func send(t *testing.T, c *Client, dst uint32, req *Envelope, wire []byte) error {
	t.Helper()
	msg, err := c.nc.Request(RequestSubject(dst), wire, 10*time.Second)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	p, err := c.peers.get(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	return c.readReply(context.Background(), req, p, msg.Data, nil)
}

func TestRejections(t *testing.T) {
	g, c, _ := setup(t)
	attacker := mustKey(t)

	tests := []struct {
		name string
		// build returns the request envelope (for reading the answer) and
		// the bytes to send.
		build func(t *testing.T) (*Envelope, []byte)
		code  int
		want  string
	}{
		{
			name: "forged signature",
			build: func(t *testing.T) (*Envelope, []byte) {
				env, _ := rawRequest(t, c, 2, "test.echo", echoReq{Msg: "hi"}, nil)
				wire, err := env.Sign(attacker) // claims twin 1, signed by another key
				if err != nil {
					t.Fatal(err)
				}
				return env, wire
			},
			code: CodeUnauthorized, want: "does not verify against twin 1's key",
		},
		{
			name: "tampered payload",
			build: func(t *testing.T) (*Envelope, []byte) {
				env, wire := rawRequest(t, c, 2, "test.echo", echoReq{Msg: "hi"}, nil)
				wire[len(wire)-sigSize-1] ^= 1
				return env, wire
			},
			code: CodeUnauthorized, want: "does not verify",
		},
		{
			name: "expired",
			build: func(t *testing.T) (*Envelope, []byte) {
				return rawRequest(t, c, 2, "test.echo", echoReq{}, func(e *Envelope) {
					e.Timestamp = time.Now().Add(-2 * time.Minute)
					e.TTL = time.Minute
				})
			},
			code: CodeExpired, want: "expired",
		},
		{
			name: "from the future",
			build: func(t *testing.T) (*Envelope, []byte) {
				return rawRequest(t, c, 2, "test.echo", echoReq{}, func(e *Envelope) {
					e.Timestamp = time.Now().Add(10 * time.Minute)
				})
			},
			code: CodeExpired, want: "clock skew: request time",
		},
		{
			name: "ttl over the limit",
			build: func(t *testing.T) (*Envelope, []byte) {
				return rawRequest(t, c, 2, "test.echo", echoReq{}, func(e *Envelope) { e.TTL = time.Hour })
			},
			code: CodeMalformed, want: "over the limit",
		},
		{
			name: "wrong destination",
			build: func(t *testing.T) (*Envelope, []byte) {
				// Addressed to twin 3, delivered to twin 2's inbox.
				g.twin(t, 3)
				env, wire := rawRequest(t, c, 3, "test.echo", echoReq{}, nil)
				answered := *env
				answered.Dst = 2 // the reply comes from twin 2
				return &answered, wire
			},
			code: CodeWrongDest, want: "envelope for twin 3 reached twin 2",
		},
		{
			name: "payload not encrypted",
			build: func(t *testing.T) (*Envelope, []byte) {
				return rawRequest(t, c, 2, "test.echo", echoReq{}, func(e *Envelope) { e.Flags = 0 })
			},
			code: CodeUnauthorized, want: "not encrypted",
		},
		{
			name: "oversized payload",
			build: func(t *testing.T) (*Envelope, []byte) {
				return rawRequest(t, c, 2, "test.echo", echoReq{Msg: strings.Repeat("x", DefaultMaxPayload+10)}, nil)
			},
			code: CodeTooLarge, want: "limit",
		},
		{
			name: "reply sent as request",
			build: func(t *testing.T) (*Envelope, []byte) {
				env, wire := rawRequest(t, c, 2, "test.echo", echoReq{}, func(e *Envelope) { e.Kind = KindReply })
				return env, wire
			},
			code: CodeMalformed, want: "reply envelope sent as a request",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, wire := tt.build(t)
			err := send(t, c, 2, env, wire)
			var re *RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *RemoteError", err)
			}
			if re.Code != tt.code || !strings.Contains(re.Message, tt.want) {
				t.Errorf("got %d %q, want %d containing %q", re.Code, re.Message, tt.code, tt.want)
			}
		})
	}
}

func TestReplay(t *testing.T) {
	_, c, _ := setup(t)
	env, wire := rawRequest(t, c, 2, "test.echo", echoReq{Msg: "once"}, nil)
	if err := send(t, c, 2, env, wire); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	err := send(t, c, 2, env, wire)
	if !errors.Is(err, ErrReplay) {
		t.Fatalf("second delivery: got %v, want ErrReplay", err)
	}
	if !strings.Contains(err.Error(), "already received") {
		t.Errorf("got %q, want a message saying it was already received", err)
	}
}

// TestMalformed: what cannot be authenticated gets no answer at all (an
// answer goes only to the inbox of the twin a request names as its
// source), and the server keeps serving.
func TestMalformed(t *testing.T) {
	_, c, _ := setup(t)
	unknown, _ := rawRequest(t, c, 2, "test.echo", echoReq{}, nil)
	unknown.Src = 77
	unknownWire, err := unknown.Sign(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, data := range [][]byte{
		[]byte("hello"),
		bytes.Repeat([]byte{0}, 200),
		append([]byte("ZRMB\x01\x01\x01\x00"), bytes.Repeat([]byte{1}, 200)...),
		unknownWire, // from a twin the registry does not know
	} {
		msg, err := c.nc.Request(RequestSubject(2), data, time.Second)
		if err == nil {
			t.Fatalf("got an answer (%d bytes) to an unauthenticated request", len(msg.Data))
		}
		if !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("got %v, want a timeout (no answer)", err)
		}
	}
	var got echoResp
	if err := c.Call(ctxTimeout(t, 5*time.Second), 2, "test.echo", echoReq{Msg: "still"}, &got); err != nil || got.Msg != "still" {
		t.Fatalf("after malformed requests: got %v, %v", got, err)
	}
}

// TestReplyOnlyToRequesterInbox: a request whose reply subject is not the
// sender's own inbox (another twin's inbox or server, the registry's
// subjects) makes the server send nothing there (issue 14, finding 1: a
// reply is sent with the responder's rights, so the requester must not
// choose where it goes).
func TestReplyOnlyToRequesterInbox(t *testing.T) {
	g, c, _ := setup(t)
	victim := g.twin(t, 3)
	vc := g.connect(t, victim)
	var mu sync.Mutex
	var got []string
	for _, subj := range []string{InboxPrefix(victim.Public()) + ".>", RequestSubject(3)} {
		if _, err := vc.Subscribe(subj, func(m *nats.Msg) {
			mu.Lock()
			got = append(got, m.Subject)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := vc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, reply := range []string{
		InboxPrefix(victim.Public()) + ".x",
		RequestSubject(3),
		TwinCreateSubject,
		"$KV.zos_farms.1",
		InboxPrefix(c.key.Public()), // the sender's prefix without a token
	} {
		for _, bad := range []bool{false, true} {
			_, wire := rawRequest(t, c, 2, "test.echo", echoReq{Msg: "x"}, nil)
			if bad {
				wire = []byte("garbage")
			}
			if err := c.nc.PublishRequest(RequestSubject(2), reply, wire); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An honest call still works, and proves the earlier ones were handled.
	if err := c.Call(ctxTimeout(t, 5*time.Second), 2, "test.echo", echoReq{Msg: "ok"}, nil); err != nil {
		t.Fatal(err)
	}
	// A stray answer could still be on its way to the victim.
	testutil.Never(t, strayReplyWindow, "the server answered onto the victim's subjects", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0, fmt.Errorf("%v", got)
	})
}

// strayReplyWindow is how long a reply the server should not have sent
// gets to reach the victim: a hop through the local server takes well under
// a millisecond.
const strayReplyWindow = 200 * time.Millisecond

func TestWireCarriesNoPlaintext(t *testing.T) {
	g := newTestGrid(t)
	const secretReq, secretResp = "wg-private-key-SECRET-1234", "zdb-password-SECRET-5678"
	k1, k2 := g.twin(t, 1), g.twin(t, 2)
	g.serve(t, 2, k2, map[string]HandlerFunc{
		"test.secret": func(_ context.Context, _ uint32, p []byte) (any, error) {
			if !bytes.Contains(p, []byte(secretReq)) {
				return nil, errors.New("secret missing")
			}
			return map[string]string{"password": secretResp}, nil
		},
	})

	// Everything the caller sends and receives (the request and the
	// reply) passes a recording proxy.
	wire := newCapture(t, g.url)
	c := NewClient(connectURL(t, wire.url, k1), 1, k1, g.resolver)
	var got map[string]string
	if err := c.Call(ctxTimeout(t, 10*time.Second), 2, "test.secret", map[string]string{"key": secretReq}, &got); err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got["password"] != secretResp {
		t.Fatalf("got %v, want the password", got)
	}
	captured := wire.bytes()
	for _, s := range []string{secretReq, secretResp, "password", "wg-private"} {
		if bytes.Contains(captured, []byte(s)) {
			t.Errorf("the wire carries %q in the clear", s)
		}
	}
	sawReq := bytes.Contains(captured, []byte("PUB "+RequestSubject(2)+" "))
	sawReply := bytes.Contains(captured, []byte("MSG "+InboxPrefix(k1.Public())))
	if !sawReq || !sawReply {
		t.Errorf("captured %d bytes (request %v, reply %v), want both the request and the reply", len(captured), sawReq, sawReply)
	}
}

// capture is a TCP proxy to a NATS server that records the bytes both
// ways.
type capture struct {
	url string
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func newCapture(t *testing.T, natsURL string) *capture {
	t.Helper()
	target := strings.TrimPrefix(natsURL, "nats://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{url: "nats://" + ln.Addr().String()}
	var wg sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		connsMu.Lock()
		for _, cn := range conns {
			cn.Close()
		}
		connsMu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				return
			}
			connsMu.Lock()
			conns = append(conns, in, out)
			connsMu.Unlock()
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				defer dst.Close()
				b := make([]byte, 32<<10)
				for {
					n, err := src.Read(b)
					if n > 0 {
						c.mu.Lock()
						c.buf.Write(b[:n])
						c.mu.Unlock()
						if _, werr := dst.Write(b[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
			wg.Add(2)
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	return c
}

func (c *capture) bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]byte(nil), c.buf.Bytes()...)
}

func connectURL(t *testing.T, url string, key identity.Key) *nats.Conn {
	t.Helper()
	nc, err := Connect(url, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestHangingHandlerDoesNotBlockOthers(t *testing.T) {
	g := newTestGrid(t)
	k1, k2 := g.twin(t, 1), g.twin(t, 2)
	release := make(chan struct{})
	entered := make(chan struct{}, 16)
	g.serve(t, 2, k2, map[string]HandlerFunc{
		"test.echo": echo,
		// Ignores its context: only the test's end releases it.
		"test.hang": func(context.Context, uint32, []byte) (any, error) {
			entered <- struct{}{}
			<-release
			return "late", nil
		},
	}, WithConcurrency(4, 0))
	t.Cleanup(func() { close(release) }) // runs before the server stops
	c := NewClient(g.connect(t, k1), 1, k1, g.resolver)

	// Two hung calls hold two of the four workers.
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			errs <- c.Call(ctx, 2, "test.hang", echoReq{}, nil)
		})
	}
	for range 2 {
		select {
		case <-entered:
		case <-time.After(5 * time.Second):
			t.Fatal("hang handler not entered after 5s")
		}
	}
	// Others are answered meanwhile.
	for i := range 20 {
		var r echoResp
		if err := c.Call(ctxTimeout(t, 5*time.Second), 2, "test.echo", echoReq{Msg: fmt.Sprint(i)}, &r); err != nil {
			t.Fatalf("echo while others hang: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("hung call: got %v, want ErrTimeout", err)
		}
	}
}

func TestHandlerBoundedByTTL(t *testing.T) {
	g := newTestGrid(t)
	k1, k2 := g.twin(t, 1), g.twin(t, 2)
	ended := make(chan error, 1)
	g.serve(t, 2, k2, map[string]HandlerFunc{
		"test.slow": func(ctx context.Context, _ uint32, _ []byte) (any, error) {
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, ctx.Err()
		},
	})
	c := NewClient(g.connect(t, k1), 1, k1, g.resolver)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Call(ctx, 2, "test.slow", echoReq{}, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("got %v, want ErrTimeout", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("handler context ended with %v, want DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("handler context still alive %s after a 300ms ttl", time.Since(start))
	}
}

func TestConcurrentCalls(t *testing.T) {
	g := newTestGrid(t)
	k2 := g.twin(t, 2)
	g.serve(t, 2, k2, map[string]HandlerFunc{"test.echo": echo})
	const clients, goroutines, calls = 3, 16, 25
	var wg sync.WaitGroup
	errs := make(chan error, clients*goroutines)
	for ci := range clients {
		twin := uint32(10 + ci)
		k := g.twin(t, twin)
		c := NewClient(g.connect(t, k), twin, k, g.resolver)
		for gi := range goroutines {
			wg.Go(func() {
				for i := range calls {
					msg := fmt.Sprintf("%d-%d-%d", twin, gi, i)
					var r echoResp
					if err := c.Call(ctxTimeout(t, 20*time.Second), 2, "test.echo", echoReq{Msg: msg}, &r); err != nil {
						errs <- err
						return
					}
					if r.Msg != msg || r.Src != twin {
						errs <- fmt.Errorf("got %+v, want %s from %d", r, msg, twin)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestKeyCache(t *testing.T) {
	g, c, _ := setup(t)
	ctx := ctxTimeout(t, 10*time.Second)
	for range 10 {
		if err := c.Call(ctx, 2, "test.echo", echoReq{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	g.resolver.mu.Lock()
	calls := g.resolver.calls
	g.resolver.mu.Unlock()
	// One lookup by the client (twin 2), one by the server (twin 1).
	if calls != 2 {
		t.Errorf("got %d resolver calls for 10 requests, want 2", calls)
	}
}

func TestServeStopsOnClosedConnection(t *testing.T) {
	g := newTestGrid(t)
	k := g.twin(t, 5)
	nc, err := Connect(g.url, k)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(nc, 5, k, g.resolver, testutil.Logger(t))
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	testutil.Eventually(t, 10*time.Second, "Serve to subscribe", func() (bool, error) { return nc.NumSubscriptions() > 0, nil })
	nc.Close()
	select {
	case err := <-done:
		if !errors.Is(err, nats.ErrConnectionClosed) {
			t.Errorf("got %v, want ErrConnectionClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running 10s after its connection closed")
	}
}

func TestServeLeavesNoGoroutines(t *testing.T) {
	g := newTestGrid(t)
	k1, k2 := g.twin(t, 1), g.twin(t, 2)
	nc := g.connect(t, k2)
	s := NewServer(nc, 2, k2, g.resolver, testutil.Logger(t))
	s.Handle("test.echo", echo)
	c := NewClient(g.connect(t, k1), 1, k1, g.resolver)

	run := func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		var err error
		_ = testutil.Poll(5*time.Second, func() (bool, error) { // until subscribed
			err = c.Call(ctxTimeout(t, 5*time.Second), 2, "test.echo", echoReq{}, nil)
			return !errors.Is(err, ErrUnreachable), err
		})
		if err != nil {
			t.Fatalf("Call: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
	}
	run() // warms the client's reply subscription
	testutil.NoLeaks(t)
	run()
}

func TestSurvivesNATSRestart(t *testing.T) {
	g := newTestGrid(t)
	k1, k2 := g.twin(t, 1), g.twin(t, 2)
	reconnect := []nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}
	snc := g.connect(t, k2, reconnect...)
	s := NewServer(snc, 2, k2, g.resolver, testutil.Logger(t))
	s.Handle("test.echo", echo)
	testutil.Go(t, "the server of twin 2", s.Serve)
	c := NewClient(g.connect(t, k1, reconnect...), 1, k1, g.resolver)
	callUntilOK := func(what string) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, "a call "+what, func() (bool, error) {
			err := c.Call(ctxTimeout(t, time.Second), 2, "test.echo", echoReq{Msg: what}, nil)
			return err == nil, err
		})
	}
	callUntilOK("before restart")

	port := g.srv.Addr().(*net.TCPAddr).Port
	g.srv.Shutdown()
	g.srv.WaitForShutdown()
	g.start(t, port)
	callUntilOK("after restart")
}

// TestSealedReplyAuthenticatedByAEAD: sealed replies carry no signature,
// so the AEAD alone must reject every forgery: a reply sealed by a third
// twin that claims to be the server, any flipped header or payload byte, a
// reply to another request, and a plain reply. A genuine one is accepted.
func TestSealedReplyAuthenticatedByAEAD(t *testing.T) {
	g, c, _ := setup(t)
	k3 := g.twin(t, 3)
	ctx := context.Background()
	req, _ := rawRequest(t, c, 2, "test.echo", echoReq{Msg: "hi"}, nil)
	server, err := c.peers.get(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	// The AEAD twin 3 shares with twin 1: what a forger holds.
	forger, err := newPeers(k3, g.resolver, buildOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	third, err := forger.get(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	reply := func(p *peer, mutate func(*Envelope)) []byte {
		t.Helper()
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		env := &Envelope{Kind: KindReply, Flags: FlagSealed, ID: id, Ref: req.ID, Src: 2, Dst: 1,
			Timestamp: time.Now(), TTL: replyTTL, Command: req.Command}
		if mutate != nil {
			mutate(env)
		}
		if env.Payload, err = seal(p.aead, env.header(), []byte(`{"msg":"hi","src":1}`)); err != nil {
			t.Fatal(err)
		}
		wire, err := env.EncodeSealedReply()
		if err != nil {
			t.Fatal(err)
		}
		return wire
	}
	genuine := reply(server, nil)
	if !bytes.Equal(genuine[len(genuine)-sigSize:], make([]byte, sigSize)) {
		t.Fatalf("got signature %x, want zeros", genuine[len(genuine)-sigSize:])
	}
	var got echoResp
	if err := c.readReply(ctx, req, server, genuine, &got); err != nil || got.Msg != "hi" {
		t.Fatalf("genuine sealed reply: got %+v, %v, want msg hi and no error", got, err)
	}
	for i := 0; i < len(genuine)-sigSize; i++ {
		b := bytes.Clone(genuine)
		b[i] ^= 0x01
		if err := c.readReply(ctx, req, server, b, nil); err == nil {
			t.Fatalf("reply with byte %d flipped: got no error, want a rejection", i)
		}
	}
	other, _ := rawRequest(t, c, 2, "test.echo", echoReq{}, nil)
	for _, tt := range []struct {
		name string
		wire []byte
		want error
	}{
		{"sealed by a third twin", reply(third, nil), ErrUnauthorized},
		{"answers another request", reply(server, func(e *Envelope) { e.Ref = other.ID }), ErrMalformed},
		{"plain reply", func() []byte {
			e := &Envelope{Kind: KindReply, ID: other.ID, Ref: req.ID, Src: 2, Dst: 1, Timestamp: time.Now(), TTL: replyTTL,
				Payload: []byte(`{}`)}
			w, err := e.Sign(k3)
			if err != nil {
				t.Fatal(err)
			}
			return w
		}(), ErrUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := c.readReply(ctx, req, server, tt.wire, nil); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := (&Envelope{Kind: KindRequest, Flags: FlagSealed}).EncodeSealedReply(); err == nil {
		t.Error("EncodeSealedReply of a request: got no error, want one (requests are signed)")
	}
	if _, err := (&Envelope{Kind: KindReply}).EncodeSealedReply(); err == nil {
		t.Error("EncodeSealedReply of a plain reply: got no error, want one (plain replies are signed)")
	}
}
