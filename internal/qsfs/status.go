package qsfs

import "slices"

// BackendStatus is the health and counters of one backend.
type BackendStatus struct {
	ID        string // address/namespace
	Group     int    // index in Config.Groups; -1 for a meta backend
	Meta      bool
	Healthy   bool   // the last call succeeded
	LastError string // of the last failed call, while unhealthy
	Written   uint64 // values written
	Read      uint64 // values read
	Errors    uint64 // calls failed
}

// Status is the store's state for metrics.
type Status struct {
	Backends       []BackendStatus
	Objects        int
	Bytes          int64 // plain bytes of the live objects
	Puts           uint64
	Gets           uint64
	Deletes        uint64
	ShardsMissing  uint64 // shards found missing by reads and repairs
	ShardsCorrupt  uint64 // shards found corrupt by reads and repairs
	ShardsRepaired uint64 // shards rewritten by repairs
	Repairs        uint64 // repairs run
}

// Status reports per-backend health and the store's counters.
func (s *Store) Status() Status {
	st := Status{
		Puts: s.puts.Load(), Gets: s.gets.Load(), Deletes: s.deletes.Load(),
		ShardsMissing: s.shardsMissing.Load(), ShardsCorrupt: s.shardsCorrupt.Load(),
		ShardsRepaired: s.shardsFixd.Load(), Repairs: s.repairs.Load(),
	}
	for _, b := range append(slices.Clone(s.data), s.meta...) {
		ok, lastErr := b.healthy()
		st.Backends = append(st.Backends, BackendStatus{ID: b.id, Group: b.group, Meta: b.group < 0, Healthy: ok,
			LastError: lastErr, Written: b.written.Load(), Read: b.read.Load(), Errors: b.failed.Load()})
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, m := range s.objects {
		if !m.Deleted {
			st.Objects++
			st.Bytes += m.Size
		}
	}
	return st
}
