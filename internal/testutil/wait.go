package testutil

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// Poll calls cond until it reports true or timeout passes, sleeping a short,
// growing interval (1ms doubling up to 50ms) between calls. It returns nil
// once cond reports true; on timeout it returns an error that holds the last
// error cond gave. The error cond returns is only the reason the condition
// does not hold yet: it does not stop the polling.
func Poll(timeout time.Duration, cond func() (bool, error)) error {
	return PollEvery(timeout, 50*time.Millisecond, cond)
}

// PollEvery is Poll with the interval growing up to every instead of 50ms:
// for conditions that cost something to check (a call through the grid, a
// connection into a VM under tcg) and that a test should not hammer.
func PollEvery(timeout, every time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	wait := min(time.Millisecond, every)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if !time.Now().Before(deadline) {
			if last != nil {
				return fmt.Errorf("not within %v: %w", timeout, last)
			}
			return fmt.Errorf("not within %v", timeout)
		}
		time.Sleep(min(wait, time.Until(deadline)+time.Millisecond))
		wait = min(2*wait, every)
	}
}

// Eventually polls cond (see Poll) and fails the test, naming what it waited
// for and the last error, if cond does not report true within timeout. Call
// it from the test's goroutine.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// Never is Eventually's opposite, for what must not happen: nothing
// signals that a thing did not happen, so the test gives it window to
// happen, calling cond through the window (see Poll) and at its end, and
// fails, naming what happened and what cond said of it, as soon as cond
// reports true. Pass a window named for why it is that long. Call it from
// the test's goroutine.
func Never(t testing.TB, window time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	var seen error
	err := Poll(window, func() (bool, error) {
		happened, err := cond()
		if happened {
			seen = err
		}
		return happened, nil
	})
	if err != nil {
		return // window passed without it
	}
	if seen != nil {
		t.Fatalf("%s: happened within %v: %v", what, window, seen)
	}
	t.Fatalf("%s: happened within %v", what, window)
}

// NoLeaks records how many goroutines run now and, when the test ends,
// fails it if more still run ten seconds after the cleanups registered after
// this call (servers, connections, mounts) have returned. Call it before
// starting what should not leak: cleanups run last-in first-out.
func NoLeaks(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		if Poll(10*time.Second, func() (bool, error) { return runtime.NumGoroutine() <= before, nil }) == nil {
			return
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutines: got %d after the test, want at most %d (before it):\n%s", runtime.NumGoroutine(), before, buf)
	})
}
