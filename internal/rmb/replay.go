package rmb

import (
	"container/heap"
	"sync"
	"time"
)

// replayKey is an envelope as the replay cache knows it: ids are chosen by
// senders, so they are only unique per source twin.
type replayKey struct {
	src uint32
	id  ID
}

type replayEntry struct {
	key     replayKey
	expires int64 // unix ms
}

// expiryHeap orders entries by expiry, soonest first.
type expiryHeap []replayEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires < h[j].expires }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(replayEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// replayCache remembers the ids of accepted envelopes until they expire. An
// envelope past its expiry is rejected as expired, so forgetting it then is
// safe. The cache holds at most max entries; when it is full of unexpired
// ids it refuses new ones rather than forget one early.
type replayCache struct {
	max int

	mu   sync.Mutex // guards seen and exp
	seen map[replayKey]struct{}
	exp  expiryHeap
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: make(map[replayKey]struct{})}
}

// replayResult is the outcome of add.
type replayResult int

const (
	replayFresh replayResult = iota
	replaySeen
	replayFull
)

// add records the envelope of src unless it was seen, and forgets the
// entries that expired before now.
func (c *replayCache) add(src uint32, id ID, expires time.Time, now time.Time) replayResult {
	k := replayKey{src: src, id: id}
	c.mu.Lock()
	defer c.mu.Unlock()
	nowMs := now.UnixMilli()
	for len(c.exp) > 0 && c.exp[0].expires < nowMs {
		e := heap.Pop(&c.exp).(replayEntry)
		delete(c.seen, e.key)
	}
	if _, ok := c.seen[k]; ok {
		return replaySeen
	}
	if len(c.seen) >= c.max {
		return replayFull
	}
	c.seen[k] = struct{}{}
	heap.Push(&c.exp, replayEntry{key: k, expires: expires.UnixMilli()})
	return replayFresh
}

func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
