package egress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
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

func TestInterfaceAddrs(t *testing.T) {
	own := InterfaceAddrs(time.Hour)
	got := own()
	if len(got) == 0 {
		testutil.Skip(t, "no interface address in this namespace")
	}
	found := false
	for _, a := range got {
		if a == netip.MustParseAddr("127.0.0.1") || a == netip.IPv6Loopback() {
			found = true
		}
	}
	if !found {
		t.Errorf("got %v, want the loopback address among them", got)
	}
	// Within the ttl the same list is answered from memory.
	if again := own(); len(again) != len(got) {
		t.Errorf("second call: %v, want %v", again, got)
	}
}
