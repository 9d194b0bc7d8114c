package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTransportError: what a tenant reads of a failed request carries no
// text the remote side chose.
func TestTransportError(t *testing.T) {
	remote := errors.New(`net/http: HTTP/1.x transport connection broken: malformed HTTP response "SSH-2.0-SECRET"`)
	tests := []struct {
		name string
		err  error
		keep bool // the error is returned as it is
	}{
		{"denied", fmt.Errorf("dial: %w", ErrDenied), true},
		{"deadline", context.DeadlineExceeded, true},
		{"eof", io.ErrUnexpectedEOF, true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"dns", &net.DNSError{Err: "no such host", Name: "hub.example"}, true},
		{"malformed answer", remote, false},
		{"malformed answer behind a redirect url", &url.Error{Op: "Get", URL: "http://SECRET/", Err: remote}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TransportError(tt.err)
			if got == nil {
				t.Fatal("got nil")
			}
			if strings.Contains(got.Error(), "SECRET") {
				t.Fatalf("got %q, which quotes the remote side", got)
			}
			var uerr *url.Error
			inner := tt.err
			if errors.As(tt.err, &uerr) {
				inner = uerr.Err
			}
			if tt.keep != (got == inner) {
				t.Fatalf("got %v, kept %v, want kept %v", got, got == inner, tt.keep)
			}
		})
	}
	if TransportError(nil) != nil {
		t.Error("TransportError(nil) != nil")
	}
}

// TestInterfaceAddrs: the node's own addresses are its interfaces'
// addresses, loopback left to its class, so that a policy allowing
// loopback (the tests' hubs) still reaches 127.0.0.1.
func TestInterfaceAddrs(t *testing.T) {
	own := InterfaceAddrs(time.Hour)
	got := own()
	for _, a := range got {
		if a.IsLoopback() {
			t.Errorf("own addresses hold the loopback address %s", a)
		}
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ia := range ifaddrs {
		p, err := netip.ParsePrefix(ia.String())
		if err != nil || p.Addr().IsLoopback() {
			continue
		}
		if !slices.Contains(got, p.Addr().Unmap()) {
			t.Errorf("own addresses %v miss the interface address %s", got, p.Addr())
		}
		// An interface address is refused even when an Allow covers it.
		pol := &Policy{Allow: []netip.Prefix{netip.PrefixFrom(p.Addr(), 0).Masked()}, Own: own}
		if err := pol.Check(p.Addr()); !errors.Is(err, ErrDenied) {
			t.Errorf("Check(%s) = %v, want the node's own address refused", p.Addr(), err)
		}
	}
	loopback, _ := ParseAllow([]string{"loopback"})
	pol := &Policy{Allow: loopback, Own: own}
	for _, a := range []string{"127.0.0.1", "::1"} {
		if err := pol.Check(netip.MustParseAddr(a)); err != nil {
			t.Errorf("Check(%s) with loopback allowed = %v", a, err)
		}
	}
	if err := (&Policy{Own: own}).Check(netip.MustParseAddr("127.0.0.1")); !errors.Is(err, ErrDenied) {
		t.Errorf("Check(127.0.0.1) without an allow = %v, want ErrDenied", err)
	}
	// Within the ttl the same list is answered from memory.
	if again := own(); !slices.Equal(again, got) {
		t.Errorf("second call: %v, want %v", again, got)
	}
}
