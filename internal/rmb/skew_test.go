package rmb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// A client whose clock is off by more than the allowed skew gets an error
// that names the skew, its direction and whose clock it is measured
// against; within the skew it is served.
func TestClientClockSkew(t *testing.T) {
	tests := []struct {
		name   string
		offset time.Duration
		want   string // "" = served
	}{
		{"ten minutes ahead", 10 * time.Minute, "clock skew: request time"},
		{"ten minutes behind", -10 * time.Minute, "is 10m0s behind twin 2's clock"},
		{"within the allowed skew", 10 * time.Second, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGrid(t)
			k1, k2 := g.twin(t, 1), g.twin(t, 2)
			g.serve(t, 2, k2, map[string]HandlerFunc{"test.echo": echo})
			skewed := func() time.Time { return time.Now().Add(tt.offset) }
			c := NewClient(g.connect(t, k1), 1, k1, g.resolver, WithClock(skewed))
			err := c.Call(ctxTimeout(t, 10*time.Second), 2, "test.echo", echoReq{Msg: "hi"}, nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("got %v, want the call served", err)
				}
				return
			}
			if !errors.Is(err, ErrExpired) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrExpired containing %q", err, tt.want)
			}
			if tt.offset > 0 && !strings.Contains(err.Error(), "ahead of twin 2's clock") {
				t.Errorf("got %v, want the skew named as ahead of twin 2's clock", err)
			}
		})
	}
}

// WithCallTimeout bounds one call under a much longer context deadline: a
// call to a twin that does not answer fails after the call timeout with
// ErrTimeout, not at the caller's deadline.
func TestCallTimeoutUnderLongDeadline(t *testing.T) {
	g := newTestGrid(t)
	k1, k2 := g.twin(t, 1), g.twin(t, 2)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	g.serve(t, 2, k2, map[string]HandlerFunc{"test.hang": func(ctx context.Context, _ uint32, _ []byte) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}})
	c := NewClient(g.connect(t, k1), 1, k1, g.resolver, WithCallTimeout(500*time.Millisecond))
	ctx := ctxTimeout(t, time.Minute)
	start := time.Now()
	err := c.Call(ctx, 2, "test.hang", echoReq{}, nil)
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	if took > 5*time.Second {
		t.Errorf("the call took %s, want about the call timeout 500ms (the context allowed a minute)", took)
	}
	if ctx.Err() != nil {
		t.Errorf("the caller's context ended: %v", ctx.Err())
	}
}
