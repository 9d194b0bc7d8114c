package primitives

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/testutil"
)

// hostileServer is a real TCP server on loopback that answers every
// connection with serve, standing for a tenant's log destination.
type hostileServer struct {
	addr  string
	conns atomic.Int64
}

func newHostileServer(t *testing.T, serve func(c net.Conn)) *hostileServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileServer{addr: ln.Addr().String()}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex // guards open
		open = map[net.Conn]bool{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.conns.Add(1)
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go io.Copy(io.Discard, c) // what the node sends; ends with c
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return h
}

// forever writes chunk until the connection fails.
func forever(chunk string) func(net.Conn) {
	return func(c net.Conn) {
		b := []byte(strings.Repeat(chunk, max(1, 4096/len(chunk))))
		for {
			if _, err := c.Write(b); err != nil {
				return
			}
		}
	}
}

// once writes s and holds the connection open until the node closes it.
func once(s string) func(net.Conn) {
	return func(c net.Conn) {
		if _, err := c.Write([]byte(s)); err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		io.Copy(io.Discard, c)
	}
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestZLogsHostileRedis: a tenant's "redis" answers what no redis would
// (endless nesting that overflowed the node's stack and killed the whole
// process, an array header that allocated 1 GiB, huge bulk strings,
// endless lines, garbage). The streamer errors out and retries, the
// process survives, and what the test allocates meanwhile stays small.
func TestZLogsHostileRedis(t *testing.T) {
	tests := []struct {
		name  string
		serve func(net.Conn)
	}{
		{"endless nesting", forever("*1\r\n")},
		{"64M array", once("*67108864\r\n")},
		{"huge bulk", once("$67108864\r\n")},
		{"endless bulk", forever("$4\r\nabcd\r\n")},
		{"endless line", func(c net.Conn) { c.Write([]byte("+")); forever("a")(c) }},
		{"resp3 map", once("%1\r\n")},
		{"no crlf", once("+OK\n")},
		{"bad integer", once(":12x\r\n")},
		{"garbage", once("\x00\xffHTTP/1.1 200 OK\r\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newHostileServer(t, tt.serve)
			m, _, _ := newTestZLogs(t)
			before := totalAlloc()
			// A password: AUTH's reply is read as soon as it connects.
			wl := zlogsWorkload(20, "hostile", "redis://:pw@"+srv.addr+"/ch")
			if _, err := m.Provision(context.Background(), wl); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, "the streamer to fail and retry", func() (bool, error) {
				n := srv.conns.Load()
				return n >= 3, fmt.Errorf("the streamer connected %d times, want it to fail and retry", n)
			})
			if !m.Running(wl.ID) {
				t.Fatal("the streamer stopped")
			}
			if got := totalAlloc() - before; got > 32<<20 {
				t.Errorf("allocated %d MiB while talking to the hostile server, want a bounded reader", got>>20)
			}
			if err := m.Deprovision(context.Background(), wl); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestZLogsReadReply(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" no error
	}{
		{"+OK\r\n", ""},
		{":42\r\n", ""},
		{"-ERR wrong password\r\n", "redis: ERR wrong password"},
		{"*1\r\n*1\r\n", "unexpected reply"},
		{"*67108864\r\n", "unexpected reply"},
		{"$5\r\nhello\r\n", "unexpected reply"},
		{"_\r\n", "unexpected reply"},
		{":x\r\n", "malformed integer reply"},
		{"+OK\n", "malformed"},
		{"+" + strings.Repeat("a", 2*maxReplyLine) + "\r\n", "longer than"},
		{"+OK", "EOF"},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 20 {
			name = name[:20]
		}
		t.Run(name, func(t *testing.T) {
			err := readReply(bufio.NewReaderSize(strings.NewReader(tt.in), maxReplyLine))
			testutil.WantError(t, err, tt.want)
		})
	}
}

// FuzzZLogsReadReply: whatever a destination answers, reading a reply
// neither panics nor reads past one bounded line.
func FuzzZLogsReadReply(f *testing.F) {
	for _, s := range []string{"+OK\r\n", ":1\r\n", "-ERR x\r\n", "*1\r\n*1\r\n", "$3\r\nabc\r\n", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReaderSize(strings.NewReader(string(b)), maxReplyLine)
		_ = readReply(r)
		if consumed := len(b) - r.Buffered(); consumed > maxReplyLine+16 {
			t.Fatalf("read %d bytes for one reply", consumed)
		}
	})
}

// TestZLogsHostileWebSocket: a websocket destination that sends handshake
// headers for ever, fast or slowly, ends the handshake within a bounded
// size and time.
func TestZLogsHostileWebSocket(t *testing.T) {
	upgrade := func(c net.Conn) bool {
		br := bufio.NewReader(c)
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return false
			}
			if l == "\r\n" {
				break
			}
		}
		_, err := c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"))
		return err == nil
	}
	tests := []struct {
		name    string
		serve   func(net.Conn)
		timeout time.Duration
		want    error
	}{
		{"endless headers", func(c net.Conn) {
			if upgrade(c) {
				forever("X-Junk: " + strings.Repeat("a", 1000) + "\r\n")(c)
			}
		}, 10 * time.Second, errHandshakeTooLarge},
		{"one huge header", func(c net.Conn) {
			if upgrade(c) {
				c.Write([]byte("X-Junk: "))
				forever("a")(c)
			}
		}, 10 * time.Second, errHandshakeTooLarge},
		{"slow headers", func(c net.Conn) {
			if !upgrade(c) {
				return
			}
			for {
				if _, err := c.Write([]byte("X")); err != nil {
					return
				}
				// The slow peer under test: one byte every 20ms, so
				// only the handshake's deadline ends it.
				time.Sleep(20 * time.Millisecond)
			}
		}, 300 * time.Millisecond, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newHostileServer(t, tt.serve)
			u, _ := url.Parse("ws://" + srv.addr + "/logs")
			conn, err := net.Dial("tcp", srv.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			before, start := totalAlloc(), time.Now()
			out, err := newWSOutput(conn, u, tt.timeout)
			if err == nil {
				out.Close()
				t.Fatal("handshake succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) && !strings.Contains(err.Error(), tt.want.Error()) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			limit := tt.timeout + 2*time.Second // the deadline ends it
			if tt.want != nil {
				limit = 2 * time.Second // the size bound ends it, long before
			}
			if el := time.Since(start); el > limit {
				t.Errorf("handshake took %s, want at most %s", el, limit)
			}
			if got := totalAlloc() - before; got > 8<<20 {
				t.Errorf("allocated %d MiB during the handshake", got>>20)
			}
		})
	}
}

// recordingDialer records the addresses a streamer dials and fails them:
// nothing leaves the test.
type recordingDialer struct {
	mu    sync.Mutex // guards addrs
	addrs []string
}

func (d *recordingDialer) lookup(uint32, string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	return func(_ context.Context, _, addr string) (net.Conn, error) {
		d.mu.Lock()
		d.addrs = append(d.addrs, addr)
		d.mu.Unlock()
		return nil, errors.New("test: no connection")
	}, nil
}

func (d *recordingDialer) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

// TestZLogsEgress: a zlogs output at the node's loopback, link-local
// (cloud metadata), multicast or own addresses is refused, as a literal
// address at provisioning and as a name once resolved (never dialled);
// private addresses that are not the node's (the tenant's network, where
// the streamer dials) and public ones are accepted.
func TestZLogsEgress(t *testing.T) {
	own := []netip.Addr{netip.MustParseAddr("192.168.77.7"), netip.MustParseAddr("203.0.114.7")}
	policy := &egress.Policy{Own: func() []netip.Addr { return own }}
	dialer := &recordingDialer{}
	m := NewZLogsManager(ZLogsConfig{Poll: 20 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Timeout: time.Second, Egress: policy}, dirConsoleLogs{t.TempDir()}, dialer.lookup, nil)
	t.Cleanup(m.Close)
	var lookups atomic.Int64
	m.lookup = func(_ context.Context, _, host string) ([]netip.Addr, error) {
		lookups.Add(1)
		switch host {
		case "evil.example":
			return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("192.168.77.7")}, nil
		case "mixed.example":
			return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("10.9.9.9")}, nil
		}
		return nil, fmt.Errorf("no such host %s", host)
	}
	tests := []struct {
		output string
		ok     bool
	}{
		{"redis://127.0.0.1:6379/ch", false},
		{"redis://127.1.2.3:6379/ch", false},
		{"ws://[::1]:80/x", false},
		{"ws://[::ffff:127.0.0.1]:80/x", false},
		{"ws://localhost/x", false},
		{"wss://LOCALHOST./x", false},
		{"redis://169.254.169.254:6379/ch", false},
		{"redis://[fe80::1]:6379/ch", false},
		{"redis://0.0.0.0:6379/ch", false},
		{"redis://239.1.2.3:6379/ch", false},
		{"redis://192.168.77.7:6379/ch", false}, // the node's own LAN address
		{"redis://203.0.114.7:6379/ch", false},  // the node's own public address
		{"redis://10.1.2.3:6379/ch", true},      // the tenant's network
		{"redis://8.8.8.8:6379/ch", true},
		{"redis://evil.example:6379/ch", true}, // refused once resolved
		{"redis://mixed.example:6379/ch", true},
	}
	for i, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			_, err := m.Provision(context.Background(), zlogsWorkload(uint64(100+i), "l", tt.output))
			if tt.ok && err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if !tt.ok && !errors.Is(err, egress.ErrDenied) {
				t.Fatalf("got %v, want egress.ErrDenied", err)
			}
		})
	}
	// The streamers of the names have resolved and retried a few times.
	testutil.Eventually(t, 5*time.Second, "the streamers to retry", func() (bool, error) {
		n := lookups.Load()
		return n >= 6, fmt.Errorf("%d lookups, want the streamers to retry", n)
	})
	seen := map[string]bool{}
	for _, a := range dialer.dialled() {
		seen[a] = true
	}
	for a := range seen {
		switch a {
		case "10.1.2.3:6379", "8.8.8.8:6379", "10.9.9.9:6379":
		default:
			t.Errorf("dialled %s, which the policy refuses", a)
		}
	}
	if !seen["10.9.9.9:6379"] {
		t.Errorf("mixed.example: dialled %v, want its private address 10.9.9.9", dialer.dialled())
	}
}
