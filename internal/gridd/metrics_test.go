package gridd_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/gridd/gridtest"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/metrics"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// TestGridMetrics runs a grid with --metrics, makes registry requests (one
// twin created, two lookups of a node that does not exist) and scrapes the
// endpoint with Prometheus' text parser: the request counts by operation
// and outcome are those requests, the twin's connection is counted in
// TWINS, JetStream shows the registry's streams.
func TestGridMetrics(t *testing.T) {
	a := gridtest.Start(t, gridd.Config{DataDir: t.TempDir(), Port: natsd.RandomPort, Replicas: 1, Auth: true, Metrics: "127.0.0.1:0"})
	if a.Metrics == "" {
		t.Fatal("grid ready without a metrics address")
	}
	key, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := rmb.Connect(a.NATS, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := registry.NewClient(nc, key).CreateTwin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	// A key gets a twin's rights when it connects again (as nodes do).
	nc.Close()
	nc, err = rmb.Connect(a.NATS, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	c := registry.NewClient(nc, key)
	for range 2 {
		if _, err := c.Node(ctx, 4242); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("node 4242: got %v, want ErrNotFound", err)
		}
	}
	fams, err := metrics.Scrape(ctx, "http://"+a.Metrics+metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   func(float64) bool
		says   string
	}{
		{"zgrid_registry_requests_total", []string{"op", registry.OpTwinCreate, "code", "ok"}, eq(1), "1"},
		{"zgrid_registry_requests_total", []string{"op", registry.OpNodeGet, "code", "not_found"}, eq(2), "2"},
		{"zgrid_registry_request_duration_seconds", []string{"op", registry.OpNodeGet}, eq(2), "2 samples"},
		{"zgrid_nats_account_connections", []string{"account", natsd.TwinAccount}, eq(1), "1 (the twin)"},
		{"zgrid_nats_account_messages_total", []string{"account", natsd.TwinAccount, "direction", "in"}, atLeast(3), ">= 3 (its requests)"},
		{"zgrid_jetstream_streams", nil, atLeast(1), ">= 1"},
		{"zgrid_jetstream_messages", nil, atLeast(1), ">= 1 (the twin's record)"},
	} {
		got, ok := fams.Value(tt.name, tt.labels...)
		if !ok || !tt.want(got) {
			t.Errorf("%s{%s}: got %v (present %v), want %s", tt.name, strings.Join(tt.labels, ","), got, ok, tt.says)
		}
	}
}

func eq(want float64) func(float64) bool     { return func(v float64) bool { return v == want } }
func atLeast(min float64) func(float64) bool { return func(v float64) bool { return v >= min } }

// TestMetricsAddrRefused: a metrics address beyond loopback is refused
// unless allowed, before anything starts.
func TestMetricsAddrRefused(t *testing.T) {
	cfg := gridd.Config{DataDir: t.TempDir(), Replicas: 1, Metrics: "0.0.0.0:9101"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--metrics") {
		t.Fatalf("got %v, want a --metrics error", err)
	}
	cfg.MetricsAllowRemote = true
	if err := cfg.Validate(); err != nil {
		t.Fatalf("allowed: got %v, want nil", err)
	}
}
