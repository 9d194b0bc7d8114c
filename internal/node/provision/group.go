package provision

import bolt "go.etcd.io/bbolt"

// Group commit. bbolt's Batch gathers the writes that arrive within a
// delay, then queues for the writer lock: while one commit waits for its
// fsync, the writes arriving meanwhile form many small batches that each
// wait for the lock and fsync in turn, so under a slow disk the queue
// grows instead of the batches. Here the writes that arrive while a commit
// runs all join the next one: one writer at a time (the leader) commits
// everything queued, then hands the lead to the first write queued since.
// No goroutine of its own, no delay when the store is idle.

// groupOp is one write waiting for a group commit.
type groupOp struct {
	fn   func(*bolt.Tx) error
	err  chan error    // its outcome once committed (or refused); buffered
	lead chan struct{} // closed when this write's caller must commit the next group
}

// write runs fn in a read-write transaction shared with the writes queued
// at the same time, and returns once that transaction is committed (and
// fsynced). fn may run more than once (when another write of its group
// fails, the others run again without it), so it must not keep effects
// outside the transaction beyond what a repeat overwrites.
func (s *Store) write(fn func(*bolt.Tx) error) error {
	o := &groupOp{fn: fn, err: make(chan error, 1), lead: make(chan struct{})}
	s.gmu.Lock()
	s.queue = append(s.queue, o)
	lead := !s.leading
	s.leading = true
	s.gmu.Unlock()
	if !lead {
		select {
		case err := <-o.err:
			return err
		case <-o.lead:
		}
	}
	s.gmu.Lock()
	ops := s.queue
	s.queue = nil
	s.gmu.Unlock()
	s.commit(ops) // o is among them
	s.gmu.Lock()
	if len(s.queue) > 0 {
		close(s.queue[0].lead)
	} else {
		s.leading = false
	}
	s.gmu.Unlock()
	return <-o.err
}

// commit runs ops in one transaction and tells each its outcome. A write
// that fails rolls the transaction back: it runs again alone, for its own
// error, and the others run again without it.
func (s *Store) commit(ops []*groupOp) {
	for len(ops) > 0 {
		failed := -1
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i, o := range ops {
				if err := o.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, o := range ops {
				o.err <- err // nil, or the commit's own error for all
			}
			return
		}
		o := ops[failed]
		o.err <- s.db.Update(o.fn)
		ops = append(ops[:failed:failed], ops[failed+1:]...)
	}
}
