package testutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	n := 0
	if err := Poll(time.Second, func() (bool, error) { n++; return n == 3, nil }); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if n != 3 {
		t.Errorf("got %d calls, want 3", n)
	}
	start := time.Now()
	err := Poll(30*time.Millisecond, func() (bool, error) { return false, errors.New("not yet") })
	if err == nil || !strings.Contains(err.Error(), "not yet") {
		t.Errorf("got %v, want the last error", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond || d > time.Second {
		t.Errorf("gave up after %v, want about 30ms", d)
	}
}

func TestPollEvery(t *testing.T) {
	var calls []time.Time
	err := PollEvery(250*time.Millisecond, 100*time.Millisecond, func() (bool, error) {
		calls = append(calls, time.Now())
		return false, nil
	})
	if err == nil {
		t.Fatal("got nil, want a timeout")
	}
	// 1, 2, 4, ..., 64ms, then 100ms steps, where Poll stops at 50ms.
	var longest time.Duration
	for i := 1; i < len(calls); i++ {
		longest = max(longest, calls[i].Sub(calls[i-1]))
	}
	if longest < 90*time.Millisecond || longest > 150*time.Millisecond {
		t.Errorf("longest pause between calls: got %v, want about 100ms", longest)
	}
}

func TestNever(t *testing.T) {
	// Nothing happens: Never returns once the window has passed, having
	// checked through it.
	calls := 0
	start := time.Now()
	Never(t, 50*time.Millisecond, "nothing", func() (bool, error) { calls++; return false, nil })
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Errorf("returned after %v, want about 50ms", d)
	}
	if calls < 3 {
		t.Errorf("got %d checks in the window, want several", calls)
	}

	// It happens midway: Never fails at once, with what cond said.
	rec := &recorder{TB: t}
	calls = 0
	start = time.Now()
	func() {
		defer func() { _ = recover() }() // Fatalf ends the recorder's "test"
		Never(rec, 10*time.Second, "the thing", func() (bool, error) {
			calls++
			return calls == 3, fmt.Errorf("seen on call %d", calls)
		})
	}()
	if d := time.Since(start); d > time.Second {
		t.Errorf("failed after %v, want at once", d)
	}
	if want := "the thing: happened within 10s: seen on call 3"; rec.failed != want {
		t.Errorf("got failure %q, want %q", rec.failed, want)
	}
}

// recorder is a testing.TB whose Fatalf records the message and stops the
// caller, so a test can check that a helper fails and how.
type recorder struct {
	testing.TB
	failed  string // what Fatalf said
	errored string // what Errorf said
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) { r.errored = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(r)
}

func TestGo(t *testing.T) {
	// run's context ends at stop (or cleanup), and stop waits for it.
	var ended atomic.Bool
	stop := Go(t, "the loop", func(ctx context.Context) error {
		<-ctx.Done()
		ended.Store(true)
		return nil
	})
	stop()
	if !ended.Load() {
		t.Error("stop returned before run")
	}
	stop() // again: nothing more

	// An error run returns fails the test, naming what returned it.
	rec := &recorder{TB: t}
	Go(rec, "the server", func(context.Context) error { return errors.New("boom") })()
	if want := "the server: boom"; rec.errored != want {
		t.Errorf("got failure %q, want %q", rec.errored, want)
	}
}

func TestWantError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
		fail string // what WantError says, "" if it passes
	}{
		{"no error wanted, none", nil, "", ""},
		{"error wanted, got it", errors.New("bad size 3"), "size", ""},
		{"no error wanted, got one", errors.New("boom"), "", "got boom, want no error"},
		{"error wanted, none", nil, "size", `got <nil>, want an error about "size"`},
		{"error wanted, another", errors.New("boom"), "size", `got boom, want an error about "size"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			func() {
				defer func() { _ = recover() }()
				WantError(rec, tt.err, tt.want)
			}()
			if rec.failed != tt.fail {
				t.Errorf("got failure %q, want %q", rec.failed, tt.fail)
			}
		})
	}
}

func TestFreePorts(t *testing.T) {
	ps := FreePorts(t, 3)
	if len(ps) != 3 || ps[0] == ps[1] || ps[1] == ps[2] || ps[0] == ps[2] || ps[0] == 0 {
		t.Errorf("got %v, want 3 distinct ports", ps)
	}
}
