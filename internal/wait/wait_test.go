package wait

import (
	"context"
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
