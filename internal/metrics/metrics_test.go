package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/zos-go/zos/internal/testutil"
)

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		addr   string
		allow  bool
		wantOK bool
		remote bool // the refusal is ErrNotLoopback
	}{
		{"127.0.0.1:9100", false, true, false},
		{"[::1]:9100", false, true, false},
		{"localhost:9100", false, true, false},
		{"0.0.0.0:9100", false, false, true},
		{":9100", false, false, true},
		{"10.0.0.5:9100", false, false, true},
		{"10.0.0.5:9100", true, true, false},
		{":9100", true, true, false},
		{"example.com:9100", true, false, false},
		{"127.0.0.1", false, false, false},
		{"127.0.0.1:notaport", false, false, false},
	} {
		err := CheckAddr(tt.addr, tt.allow)
		if (err == nil) != tt.wantOK || errors.Is(err, ErrNotLoopback) != tt.remote {
			t.Errorf("CheckAddr(%q, allow %v): got %v, want ok %v (not loopback %v)", tt.addr, tt.allow, err, tt.wantOK, tt.remote)
		}
	}
}

// TestServeAndScrape serves a registry with request metrics and reads it
// back with Prometheus' text parser: the counts and histogram samples are
// the requests observed.
func TestServeAndScrape(t *testing.T) {
	testutil.NoLeaks(t)
	reg := NewRegistry()
	req := NewRequests(reg, "test", "svc", "Test")
	gauge := prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_things", Help: "Things."})
	reg.MustRegister(gauge)
	gauge.Set(42)
	for range 3 {
		req.Observe("node.get", 2*time.Millisecond, "ok")
	}
	req.Observe("node.register", 30*time.Millisecond, "unauthorized")

	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, reg, testutil.Logger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	url := fmt.Sprintf("http://%s%s", ln.Addr(), Path)
	fams, err := Scrape(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"test_things", nil, 42},
		{"test_svc_requests_total", []string{"op", "node.get", "code", "ok"}, 3},
		{"test_svc_requests_total", []string{"op", "node.register", "code", "unauthorized"}, 1},
		{"test_svc_request_duration_seconds", []string{"op", "node.get"}, 3},
	} {
		if got, ok := fams.Value(tt.name, tt.labels...); !ok || got != tt.want {
			t.Errorf("%s%v: got %v (present %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	if _, ok := fams.Value("go_goroutines"); !ok {
		t.Error("go_goroutines missing: the runtime collector is not registered")
	}
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: got %s, want 405", Path, resp.Status)
	}
	if _, err := Listen("0.0.0.0:0", false); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("Listen on all interfaces without allow: got %v, want ErrNotLoopback", err)
	}
}
