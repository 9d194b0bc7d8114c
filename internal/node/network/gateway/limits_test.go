package gateway

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// dialTLS completes a TLS handshake with the gateway for name from the
// local address from, and keeps the connection open (idle) until the test
// ends.
func dialTLS(t *testing.T, gw, name string, from netip.Addr) (*tls.Conn, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: from.AsSlice()}}
	c, err := tls.DialWithDialer(d, "tcp", gw, &tls.Config{ServerName: name, InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// TestClientConnLimit: one client opening every connection slot of the
// gateway and holding them idle gets only its share; the rest are closed
// at once, and another client is still served.
func TestClientConnLimit(t *testing.T) {
	p := New(Config{MaxConns: 8, MaxConnsPerClient: 3, MaxConnsPerRoute: 8, HandshakeTimeout: 30 * time.Second, IdleTimeout: time.Minute}, &SelfSigned{}, testutil.Logger(t))
	b := newBackend(t, "")
	if err := p.Set("1-2-app", Route{FQDN: "app.example.org", Backends: []string{b.URL}}); err != nil {
		t.Fatal(err)
	}
	gw := serve(t, p).Addr().String()
	attacker := netip.MustParseAddr("127.0.0.2")
	held := 0
	for range 8 {
		if _, err := dialTLS(t, gw, "app.example.org", attacker); err == nil {
			held++
		}
	}
	if held != 3 {
		t.Errorf("connections the attacker holds: got %d, want 3", held)
	}
	if body, err := get(gw, "app.example.org", netip.MustParseAddr("127.0.0.3"), nil); err != nil || body != "hello app.example.org" {
		t.Errorf("another client: got %q, %v", body, err)
	}
}

// TestRouteConnLimit: clients of one tenant's name (several addresses,
// each within its own limit) cannot take every slot: the name gets its
// share and another tenant's name is still served.
func TestRouteConnLimit(t *testing.T) {
	p := New(Config{MaxConns: 8, MaxConnsPerClient: 3, MaxConnsPerRoute: 4, HandshakeTimeout: 30 * time.Second, IdleTimeout: time.Minute}, &SelfSigned{}, testutil.Logger(t))
	b := newBackend(t, "")
	if err := p.Set("1-2-busy", Route{FQDN: "busy.example.org", Backends: []string{b.URL}}); err != nil {
		t.Fatal(err)
	}
	if err := p.Set("2-2-other", Route{FQDN: "other.example.org", Backends: []string{b.URL}}); err != nil {
		t.Fatal(err)
	}
	gw := serve(t, p).Addr().String()
	held := 0
	for _, from := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		for range 3 {
			if _, err := dialTLS(t, gw, "busy.example.org", netip.MustParseAddr(from)); err == nil {
				held++
			}
		}
	}
	if held != 4 {
		t.Errorf("connections held on busy.example.org: got %d, want 4", held)
	}
	if body, err := get(gw, "other.example.org", netip.MustParseAddr("127.0.0.5"), nil); err != nil || body != "hello other.example.org" {
		t.Errorf("another tenant's name: got %q, %v", body, err)
	}
}

// closedByServer waits (at most 20 s, a failure) for the server to close
// c and reports how the read ended.
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the gateway kept an idle connection open")
	}
}

// TestIdleTimeouts: a client that goes silent loses its connection: before
// its ClientHello, between keep-alive requests, and on a passthrough
// stream (whose backend connection is closed too), so idle clients do not
// keep slots.
func TestIdleTimeouts(t *testing.T) {
	p := New(Config{HandshakeTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}, &SelfSigned{}, testutil.Logger(t))
	b := newBackend(t, "")
	if err := p.Set("1-2-app", Route{FQDN: "app.example.org", Backends: []string{b.URL}}); err != nil {
		t.Fatal(err)
	}
	// A passthrough backend: TLS, answering one line, then waiting.
	certs := &SelfSigned{}
	pln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: certs.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pln.Close() })
	backendClosed := make(chan error, 1)
	go func() {
		c, err := pln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.WriteString(c, "hello\n")
		_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, err = io.Copy(io.Discard, c)
		backendClosed <- err
	}()
	if err := p.Set("1-2-pt", Route{FQDN: "pt.example.org", Backends: []string{pln.Addr().String()}, Passthrough: true}); err != nil {
		t.Fatal(err)
	}
	gw := serve(t, p).Addr().String()

	t.Run("before the hello", func(t *testing.T) {
		c, err := net.Dial("tcp", gw)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closedByServer(t, c)
	})
	t.Run("keep-alive", func(t *testing.T) {
		c, err := dialTLS(t, gw, "app.example.org", netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: app.example.org\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Close || string(body) != "hello app.example.org" {
			t.Fatalf("got %q (close %v), want a kept-alive answer", body, resp.Close)
		}
		closedByServer(t, c)
	})
	t.Run("passthrough", func(t *testing.T) {
		c, err := dialTLS(t, gw, "pt.example.org", netip.MustParseAddr("127.0.0.1"))
		if err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "hello\n" {
			t.Fatalf("through passthrough: got %q, %v", line, err)
		}
		closedByServer(t, c)
		if err := <-backendClosed; errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the backend's connection stayed open")
		}
	})
}
