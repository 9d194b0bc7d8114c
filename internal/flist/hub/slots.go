package hub

import "sync"

// slots bound the signed uploads running at once, in all and per twin, so
// that no twin holds the hub's disk and memory for everyone.
type slots struct {
	max, perTwin int

	mu    sync.Mutex // guards total and per
	total int
	per   map[uint32]int
}

func newSlots(max, perTwin int) *slots {
	return &slots{max: max, perTwin: perTwin, per: map[uint32]int{}}
}

// acquire takes a slot for twin, or reports false when the twin or the hub
// is at its bound. release gives it back (once, however often called).
func (s *slots) acquire(twin uint32) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.max || s.per[twin] >= s.perTwin {
		return nil, false
	}
	s.total++
	s.per[twin]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.total--
			if s.per[twin]--; s.per[twin] <= 0 {
				delete(s.per, twin)
			}
		})
	}, true
}
