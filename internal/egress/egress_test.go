package egress

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

func TestCheck(t *testing.T) {
	own := []netip.Addr{netip.MustParseAddr("203.0.114.7"), netip.MustParseAddr("10.9.0.1")}
	p := &Policy{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		Own:   func() []netip.Addr { return own },
	}
	tests := []struct {
		addr string
		want Class // "" allowed
	}{
		{"1.1.1.1", ""},
		{"2606:4700::1111", ""},
		{"127.0.0.1", ClassLoopback},
		{"127.255.1.2", ClassLoopback},
		{"::1", ClassLoopback},
		{"::ffff:127.0.0.1", ClassLoopback},
		{"0.0.0.0", ClassUnspecified},
		{"::", ClassUnspecified},
		{"169.254.169.254", ClassLinkLocal},
		{"fe80::1", ClassLinkLocal},
		{"::ffff:169.254.169.254", ClassLinkLocal},
		{"239.1.1.1", ClassMulticast},
		{"ff02::1", ClassLinkLocal},
		{"ff05::2", ClassMulticast},
		{"10.0.0.1", ClassPrivate},
		{"10.9.3.4", ""}, // allowed prefix
		{"::ffff:10.9.3.4", ""},
		{"172.31.255.255", ClassPrivate},
		{"192.168.1.1", ClassPrivate},
		{"100.64.0.1", ClassPrivate},
		{"fd00::1", ClassPrivate},
		{"255.255.255.255", ClassReserved},
		{"240.0.0.1", ClassReserved},
		{"0.1.2.3", ClassReserved},
		{"64:ff9b::7f00:1", ClassLoopback},     // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", ClassLinkLocal}, // NAT64 of 169.254.169.254
		{"2002:7f00:1::1", ClassLoopback},      // 6to4 of 127.0.0.1
		{"203.0.114.7", ClassOwn},
		{"::ffff:203.0.114.7", ClassOwn},
		{"10.9.0.1", ClassOwn}, // own, inside an allowed prefix
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := p.Check(netip.MustParseAddr(tt.addr))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want allowed", err)
				}
				return
			}
			if !errors.Is(err, ErrDenied) {
				t.Fatalf("got %v, want ErrDenied (%s)", err, tt.want)
			}
			if c := Classify(netip.MustParseAddr(tt.addr)); tt.want != ClassOwn && c != tt.want {
				t.Fatalf("class %q, want %q", c, tt.want)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	p := &Policy{}
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://hub.grid.tf/a/b.fl", true},
		{"http://example.com:8080/x", true},
		{"file:///etc/shadow", false},
		{"/var/cache/zos/key", false},
		{"ftp://example.com/x", false},
		{"http://127.0.0.1:9900/admin", false},
		{"http://[::1]/", false},
		{"http://[::ffff:127.0.0.1]/", false},
		{"http://localhost/", false},
		{"http://LOCALHOST./", false},
		{"http://a.localhost/", false},
		{"http://169.254.169.254/latest/meta-data", false},
		{"http://user:pw@example.com/", false},
		{"http:///nohost", false},
	}
	for _, tt := range tests {
		_, err := p.CheckURL(tt.url, "http", "https")
		if (err == nil) != tt.ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", tt.url, err, tt.ok)
		}
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow([]string{"private", "loopback", "192.0.2.1", "2001:db8::/48"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(privateRanges)+4 {
		t.Fatalf("got %d prefixes: %v", len(got), got)
	}
	if _, err := ParseAllow([]string{"nope"}); err == nil {
		t.Fatal("got nil error for a bad entry")
	}
}

// TestDialerFollowsRedirect shows that the check runs at connection time:
// a public-looking first hop that redirects to loopback is refused at the
// second connection, and a name resolving to loopback is refused too.
func TestDialer(t *testing.T) {
	secret := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("node secret"))
	}))
	defer secret.Close()
	_, port, _ := net.SplitHostPort(secret.Listener.Addr().String())

	// The redirector is on 127.0.0.2, which the policy allows; the secret
	// on 127.0.0.1, which it does not.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		testutil.Skip(t, "no 127.0.0.2: "+err.Error())
	}
	srv := &http.Server{Handler: http.RedirectHandler(secret.URL, http.StatusFound), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	p := &Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}
	client := &http.Client{Transport: &http.Transport{DialContext: p.Dialer(&net.Dialer{Timeout: 2 * time.Second}).DialContext}}
	resp, err := client.Get("http://" + ln.Addr().String() + "/")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("redirect to loopback followed: status %s", resp.Status)
	}
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("got %v, want ErrDenied", err)
	}
	// A host name resolving to loopback.
	_, err = client.Get("http://localhost:" + port + "/")
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("localhost: got %v, want ErrDenied", err)
	}
	// ControlContext of the base dialer still runs.
	called := false
	d := p.Dialer(&net.Dialer{ControlContext: func(context.Context, string, string, syscall.RawConn) error { called = true; return nil }})
	c, err := d.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !called {
		t.Fatal("base ControlContext not called")
	}
}
