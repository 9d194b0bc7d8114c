package loglimit

import (
	"fmt"
	"testing"
	"time"
)

func TestAllow(t *testing.T) {
	l := New(time.Hour)
	if n, ok := l.Allow("a"); !ok || n != 0 {
		t.Fatalf("first line: got %d, %v; want 0, true", n, ok)
	}
	for range 3 {
		if _, ok := l.Allow("a"); ok {
			t.Fatal("a repeated line within the interval: got through, want suppressed")
		}
	}
	if _, ok := l.Allow("b"); !ok {
		t.Fatal("another reason: got suppressed, want through")
	}
	l.interval = 0
	if n, ok := l.Allow("a"); !ok || n != 3 {
		t.Fatalf("after the interval: got %d, %v; want 3, true", n, ok)
	}
}

func TestAllowBounded(t *testing.T) {
	l := New(time.Hour)
	for i := range 10 * maxReasons {
		l.Allow(fmt.Sprint(i))
	}
	if len(l.last) > maxReasons || len(l.hits) > maxReasons {
		t.Errorf("got %d reasons remembered, want at most %d", len(l.last), maxReasons)
	}
}
