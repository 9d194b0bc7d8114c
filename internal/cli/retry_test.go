package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// The one classification of errors: what a restart of the grid or a node
// produces is asked again; refusals and bad requests are not.
func TestTransient(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"node gone (no server on its subject)", fmt.Errorf("node 1: %w: no server on rmb.2", rmb.ErrUnreachable), true},
		{"node call timed out", fmt.Errorf("node 1: %w", rmb.ErrTimeout), true},
		{"registry timed out", fmt.Errorf("registry node.get: %w", registry.ErrTimeout), true},
		{"registry busy", registry.ErrBusy, true},
		{"no responders", fmt.Errorf("registry contract.get: %w", nats.ErrNoResponders), true},
		{"reconnecting", nats.ErrConnectionReconnecting, true},
		{"grid not listening (restarting)", fmt.Errorf("connecting: %w", nats.ErrNoServers), true},
		{"connection refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"deadline of one request", fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{"node busy (remote 503)", &rmb.RemoteError{Code: rmb.CodeBusy, Message: "busy"}, true},
		{"node could not reach the registry", &rmb.RemoteError{Code: rmb.CodeHandler, Message: "getting contract 5: registry contract.get: registry did not answer in time: no answer within 10s"}, true},
		{"clock skew", &rmb.RemoteError{Code: rmb.CodeExpired, Message: "clock skew: request time ..."}, false},
		{"registry refused", fmt.Errorf("registry: %w", registry.ErrUnauthorized), false},
		{"skewed write", fmt.Errorf("registry: %w: clock skew", registry.ErrExpired), false},
		{"handler refused the deployment", &rmb.RemoteError{Code: rmb.CodeHandler, Message: "invalid deployment: no workloads"}, false},
		{"context canceled (Ctrl-C)", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := transient(tt.err); got != tt.want {
				t.Errorf("transient(%v): got %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		n    int
		want time.Duration
	}{{1, 250 * time.Millisecond}, {2, 500 * time.Millisecond}, {3, time.Second}, {5, 4 * time.Second}, {6, 5 * time.Second}, {50, 5 * time.Second}}
	for _, tt := range tests {
		if got := backoff(tt.n); got != tt.want {
			t.Errorf("backoff(%d): got %s, want %s", tt.n, got, tt.want)
		}
	}
}

// retrier.do asks again after transient errors, stops at a permanent one,
// and when its context ends returns the last error with the context's.
func TestRetrierDo(t *testing.T) {
	env := &Env{Stdout: new(nopWriter), Stderr: new(nopWriter)}
	t.Run("transient then success", func(t *testing.T) {
		r := &retrier{env: env, what: "waiting for node 1"}
		n := 0
		err := r.do(context.Background(), func() error {
			n++
			if n < 3 {
				return rmb.ErrUnreachable
			}
			return nil
		})
		if err != nil || n != 3 || r.total != 2 {
			t.Errorf("got err %v after %d attempts (%d transient), want nil after 3 (2 transient)", err, n, r.total)
		}
	})
	t.Run("permanent stops", func(t *testing.T) {
		r := &retrier{env: env, what: "waiting for node 1"}
		n := 0
		err := r.do(context.Background(), func() error { n++; return registry.ErrUnauthorized })
		if !errors.Is(err, registry.ErrUnauthorized) || n != 1 {
			t.Errorf("got %v after %d attempts, want ErrUnauthorized after 1", err, n)
		}
	})
	t.Run("context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
		defer cancel()
		r := &retrier{env: env, what: "waiting for node 1"}
		err := r.do(ctx, func() error { return rmb.ErrTimeout })
		if !errors.Is(err, rmb.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v, want the last error and the deadline", err)
		}
	})
}

type nopWriter struct{}

func (*nopWriter) Write(p []byte) (int, error) { return len(p), nil }
