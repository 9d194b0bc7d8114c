package testutil

import (
	"context"
	"sync"
	"testing"
	"time"
)

// stopWait is how long stopping a goroutine started by Go may take.
const stopWait = 10 * time.Second

// Go runs run (a server's Serve, a service's Run) on its own goroutine
// with a context that ends when the test does, or when the returned stop
// is called by a test that stops it midway. Stopping cancels the context
// and waits for run to return; the test fails, naming what, if run
// returned an error or did not return within ten seconds.
func Go(t testing.TB, what string, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", what, err)
				}
			case <-time.After(stopWait):
				t.Errorf("%s: still running %v after its context ended", what, stopWait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
