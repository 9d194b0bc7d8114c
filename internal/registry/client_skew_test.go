package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// A client whose clock is 10 minutes off gets ErrExpired naming the clock
// skew, its size and direction; the same key with a true clock is served.
func TestClientClockSkewNamed(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		offset time.Duration
		want   string
	}{
		{"ahead", 10 * time.Minute, "is 10m0s ahead of the grid's clock"},
		{"behind", -10 * time.Minute, "is 10m0s behind the grid's clock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClient(g.nc, k, WithClock(func() time.Time { return time.Now().Add(tt.offset) }))
			_, err := c.CreateTwin(ctx, "")
			if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), "clock skew: request time") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrExpired naming the clock skew (%q)", err, tt.want)
			}
		})
	}
	if _, err := NewClient(g.nc, k).CreateTwin(ctx, ""); err != nil {
		t.Fatalf("with a true clock: got %v, want the twin created", err)
	}
}

// One request is bounded by the client's request timeout even when the
// caller's deadline is far: a request nobody answers (no registry service
// on the subject, as when the grid is away) fails fast with ErrTimeout
// (or no responders) and leaves the caller's context alive.
func TestClientRequestTimeoutUnderLongDeadline(t *testing.T) {
	srv := startServer(t)
	nc := connect(t, srv.ClientURL())
	// A subscriber that never answers stands for a registry that is gone
	// after the request left.
	sub, err := nc.SubscribeSync(SubjectPrefix + OpNodeGet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	c := NewClient(nc, identity.Key{}, WithRequestTimeout(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	start := time.Now()
	_, err = c.Node(ctx, 1)
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if took > 5*time.Second {
		t.Errorf("the request took %s, want about the request timeout 300ms", took)
	}
	if ctx.Err() != nil {
		t.Errorf("the caller's context ended: %v", ctx.Err())
	}
}

// A prepared contract creation sent twice makes one contract: the resend
// of an applied request is refused as a replay, so a client that lost the
// first answer learns the contract exists.
func TestPreparedContractAppliedOnce(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	_, _, _, node := g.farmWithNode(t, "prepfarm", 0)
	u := g.user(t)
	p, err := u.c.PrepareNodeContract(node.ID, "abc123", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := u.c.SendNodeContract(ctx, p)
	if err != nil {
		t.Fatalf("first send: %v", err)
	}
	if _, err := u.c.SendNodeContract(ctx, p); !errors.Is(err, ErrReplay) {
		t.Fatalf("resend: got %v, want ErrReplay", err)
	}
	cs, err := u.c.Contracts(ctx, ContractFilter{TwinID: u.twin.ID, NodeID: node.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].ID != c.ID || cs[0].DeploymentHash != "abc123" {
		t.Errorf("got contracts %+v, want only contract %d with hash abc123", cs, c.ID)
	}
}

// A long poll is held longer than the request timeout: the fetch of
// events waits its whole wait and comes back empty, not as ErrTimeout.
func TestFetchEventsHeldPastRequestTimeout(t *testing.T) {
	g := newGrid(t)
	_, _, nodeUser, node := g.farmWithNode(t, "pollfarm", 0)
	c := NewClient(g.nc, nodeUser.key, WithRequestTimeout(300*time.Millisecond))
	ctx := context.Background()
	info, err := c.EventsInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	p, err := c.FetchEvents(ctx, node.ID, info.LastSeq, time.Second)
	if err != nil {
		t.Fatalf("got %v, want the fetch held for its wait and answered", err)
	}
	if took := time.Since(start); took < 900*time.Millisecond {
		t.Errorf("the fetch came back after %s, want it held about its 1s wait", took)
	}
	if len(p.Events) != 0 {
		t.Errorf("got %d events, want none", len(p.Events))
	}
}
