package gateway

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/testutil"
)

// TestPauseStopsServing: a paused gateway workload (its contract's grace
// period) is not served, keeps its name from other workloads, and is
// served again once resumed. (Backends on loopback do not pass the
// workload's validation, so the route is set directly, as in
// TestBackendBecomesOwn.)
func TestPauseStopsServing(t *testing.T) {
	own := &addrs{l: []netip.Addr{nodeIP}}
	policy := testPolicy(own)
	p := New(Config{}, &SelfSigned{}, testutil.Logger(t))
	m := NewManager(ManagerConfig{Backends: policy}, p, fakeRegistry{domain: "gw.example.com"}, &fakeNetworks{})
	gw := serve(t, p).Addr().String()
	b := newBackend(t, "127.0.0.3:0")
	if err := p.Set("1-2-app", Route{FQDN: "app.example.org", Backends: []string{b.URL}, Dial: policy.internetDial(), Twin: 1}); err != nil {
		t.Fatal(err)
	}
	wl := &provision.Workload{ID: "1-2-app"}
	ctx := context.Background()
	if body, err := get(gw, "app.example.org", netip.Addr{}, nil); err != nil || body != "hello app.example.org" {
		t.Fatalf("before the pause: got %q, %v", body, err)
	}
	for range 2 { // idempotent
		if err := m.Pause(ctx, wl); err != nil {
			t.Fatal(err)
		}
	}
	before := b.conns.accepted()
	if body, err := get(gw, "app.example.org", netip.Addr{}, nil); err == nil {
		t.Fatalf("paused: got %q, want no answer", body)
	}
	if got := b.conns.accepted(); got != before {
		t.Fatalf("paused: the backend got %d new connections, want 0", got-before)
	}
	if p.Serves("app.example.org") {
		t.Fatal("paused: Serves says the name is served")
	}
	if err := p.Set("3-4-steal", Route{FQDN: "app.example.org", Backends: []string{b.URL}, Twin: 3}); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("another workload taking the paused name: got %v, want ErrNameInUse", err)
	}

	if err := m.Resume(ctx, wl); err != nil {
		t.Fatal(err)
	}
	if body, err := get(gw, "app.example.org", netip.Addr{}, nil); err != nil || body != "hello app.example.org" {
		t.Fatalf("resumed: got %q, %v", body, err)
	}
	if err := m.Pause(ctx, &provision.Workload{ID: "1-2-none"}); !errors.Is(err, ErrNoRoute) {
		t.Fatalf("pausing a workload without a route: got %v, want ErrNoRoute", err)
	}
}
