package hub

import (
	"errors"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

// TestReplayMemory: a nonce is refused again for the whole window and
// forgotten after it; memory is bounded per twin and in all, by refusing
// new requests rather than forgetting nonces early.
func TestReplayMemory(t *testing.T) {
	r := newReplay(10*time.Minute, 5, 3)
	t0 := time.Now()
	n := func(i byte) (out [flist.NonceSize]byte) { out[0] = i; return out }
	steps := []struct {
		name  string
		twin  uint32
		nonce byte
		at    time.Duration
		want  error
	}{
		{"first", 1, 1, 0, nil},
		{"replay", 1, 1, time.Minute, errReplayed},
		{"same nonce, other twin", 2, 1, time.Minute, nil},
		{"twin 1 second", 1, 2, 2 * time.Minute, nil},
		{"twin 1 third", 1, 3, 2 * time.Minute, nil},
		{"twin 1 past its share", 1, 4, 2 * time.Minute, errTooManyNonces},
		{"twin 2 second", 2, 2, 3 * time.Minute, nil},
		{"twin 3 past the total", 3, 1, 3 * time.Minute, errTooManyNonces},
		{"replay at the end of the window", 1, 1, 10*time.Minute - time.Second, errReplayed},
		{"first nonces expired: twin 3 fits", 3, 1, 12*time.Minute + time.Second, nil},
		{"twin 1 fits again", 1, 4, 12*time.Minute + time.Second, nil},
		{"expired nonce accepted again", 1, 1, 12*time.Minute + time.Second, nil},
	}
	for _, s := range steps {
		if err := r.use(s.twin, n(s.nonce), t0.Add(s.at)); !errors.Is(err, s.want) {
			t.Errorf("%s: got %v, want %v", s.name, err, s.want)
		}
	}
	if err := r.use(9, n(9), t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := r.size(); got != 1 {
		t.Errorf("remembered after everything expired: got %d, want 1", got)
	}
	if len(r.queue)-r.head != 1 || len(r.count) != 1 {
		t.Errorf("queue %d-%d, counts %v: want one live entry", len(r.queue), r.head, r.count)
	}
}

// TestReplayMemoryBoundedUnderFlood: a twin signing as fast as it can
// never makes the hub remember more than its share.
func TestReplayMemoryBoundedUnderFlood(t *testing.T) {
	r := newReplay(10*time.Minute, 1000, 100)
	t0 := time.Now()
	var refused int
	for i := range 100000 {
		var nonce [flist.NonceSize]byte
		nonce[0], nonce[1], nonce[2] = byte(i), byte(i>>8), byte(i>>16)
		if err := r.use(7, nonce, t0.Add(time.Duration(i)*time.Millisecond)); err != nil {
			refused++
		}
		if r.size() > 100 {
			t.Fatalf("remembering %d nonces, want at most 100", r.size())
		}
	}
	if refused == 0 {
		t.Errorf("a flood was never told to wait")
	}
	if cap(r.queue) > 1000 {
		t.Errorf("queue grew to %d", cap(r.queue))
	}
}
