package hub

import (
	"errors"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

var (
	errReplayed      = errors.New("nonce already used (replayed request)")
	errTooManyNonces = errors.New("too many signed requests in the last minutes, try again later")
)

// replay remembers the nonce of every accepted signed request for ttl, so
// each is accepted once. ttl covers a request's whole acceptable life: its
// time may be up to MaxSkew ahead of the clock and is accepted until
// MaxSkew past it. Memory is bounded: a twin past its share of max, or the
// hub past max, is told to wait rather than a nonce being forgotten early.
type replay struct {
	ttl          time.Duration
	max, perTwin int

	mu    sync.Mutex // guards seen, queue, head and count
	seen  map[nonceKey]struct{}
	queue []nonceEntry   // entries by expiry, oldest first, from head on
	head  int            // first live entry of queue
	count map[uint32]int // live entries per twin
}

type nonceKey struct {
	twin  uint32
	nonce [flist.NonceSize]byte
}

type nonceEntry struct {
	key     nonceKey
	expires time.Time
}

func newReplay(ttl time.Duration, max, perTwin int) *replay {
	return &replay{ttl: ttl, max: max, perTwin: perTwin, seen: map[nonceKey]struct{}{}, count: map[uint32]int{}}
}

// use accepts twin's nonce at now once: errReplayed if it was accepted
// within ttl, errTooManyNonces if the twin or the hub remembers as many as
// it may.
func (r *replay) use(twin uint32, nonce [flist.NonceSize]byte, now time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire(now)
	k := nonceKey{twin: twin, nonce: nonce}
	if _, ok := r.seen[k]; ok {
		return errReplayed
	}
	if len(r.seen) >= r.max || r.count[twin] >= r.perTwin {
		return errTooManyNonces
	}
	r.seen[k] = struct{}{}
	r.count[twin]++
	// now grows (a monotonic clock), so the queue stays by expiry; were it
	// to step back, an entry would only be kept longer, never forgotten early.
	r.queue = append(r.queue, nonceEntry{key: k, expires: now.Add(r.ttl)})
	return nil
}

// expire forgets the nonces whose time is over. Called with mu held.
func (r *replay) expire(now time.Time) {
	for r.head < len(r.queue) && !r.queue[r.head].expires.After(now) {
		k := r.queue[r.head].key
		delete(r.seen, k)
		if r.count[k.twin]--; r.count[k.twin] <= 0 {
			delete(r.count, k.twin)
		}
		r.queue[r.head] = nonceEntry{}
		r.head++
	}
	if r.head > 0 && r.head >= len(r.queue)/2 {
		n := copy(r.queue, r.queue[r.head:])
		r.queue = r.queue[:n]
		r.head = 0
	}
}

// size is how many nonces are remembered.
func (r *replay) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}
