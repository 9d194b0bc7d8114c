// Package gridtest starts an in-process grid (gridd.Run) for tests: the
// one grid starter of cmd/zgrid's and internal/cli's tests.
package gridtest

import (
	"context"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/testutil"
)

// Loopback is the configuration of a grid on random loopback ports with
// the relay's key authentication and the registry, data under a temporary
// directory of t; no explorer, no hub.
func Loopback(t testing.TB) gridd.Config {
	return gridd.Config{DataDir: t.TempDir(), Listen: "127.0.0.1", Port: natsd.RandomPort, Replicas: 1, Auth: true}
}

// Start runs a grid with cfg until t's cleanup, which stops it and reports
// an error it returned, and returns its addresses once it is ready (every
// task serves). cfg.Ready is Start's own.
func Start(t testing.TB, cfg gridd.Config) gridd.Addrs {
	t.Helper()
	ready := make(chan gridd.Addrs, 1)
	cfg.Ready = func(a gridd.Addrs) { ready <- a }
	ctx, cancel := context.WithCancel(context.Background())
	var runErr error
	done := make(chan struct{}) // closed once Run returned runErr
	go func() {
		defer close(done)
		runErr = gridd.Run(ctx, cfg, testutil.Logger(t))
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if runErr != nil {
			t.Errorf("grid run: %v", runErr)
		}
	})
	select {
	case a := <-ready:
		return a
	case <-done:
		t.Fatal("grid stopped before it was ready")
	case <-time.After(60 * time.Second):
		t.Fatal("grid not ready")
	}
	return gridd.Addrs{}
}
