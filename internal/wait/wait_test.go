package wait

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestSleep(t *testing.T) {
	if got := Sleep(context.Background(), time.Millisecond); !got {
		t.Errorf("Sleep with a live context: got %v, want true", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if got := Sleep(ctx, time.Hour); got {
		t.Errorf("Sleep with an ended context: got %v, want false", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Sleep with an ended context took %v, want it to return at once", d)
	}
}

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, 5*time.Millisecond, func() {
			if n.Add(1) == 3 {
				cancel()
			}
		})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
	if got := n.Load(); got != 3 {
		t.Errorf("got %d calls, want 3 (none after the context ended)", got)
	}

	start := time.Now()
	Every(ctx, time.Hour, func() { t.Error("called with an ended context") })
	if d := time.Since(start); d > time.Second {
		t.Errorf("Every with an ended context took %v, want it to return at once", d)
	}
}
