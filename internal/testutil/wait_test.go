package testutil

import (
	"errors"
	"strings"
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

func TestFreePorts(t *testing.T) {
	ps := FreePorts(t, 3)
	if len(ps) != 3 || ps[0] == ps[1] || ps[1] == ps[2] || ps[0] == ps[2] || ps[0] == 0 {
		t.Errorf("got %v, want 3 distinct ports", ps)
	}
}
