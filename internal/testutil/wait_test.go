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

func TestFreePorts(t *testing.T) {
	ps := FreePorts(t, 3)
	if len(ps) != 3 || ps[0] == ps[1] || ps[1] == ps[2] || ps[0] == ps[2] || ps[0] == 0 {
		t.Errorf("got %v, want 3 distinct ports", ps)
	}
}
