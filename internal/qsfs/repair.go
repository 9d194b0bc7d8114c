package qsfs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// RepairReport says what a Repair found and did.
type RepairReport struct {
	Objects         int // objects checked
	Chunks          int // chunks checked
	ShardsChecked   int
	ShardsMissing   int // absent, or on a backend that is down or no longer configured
	ShardsCorrupt   int // present but failing their checksum
	ShardsRewritten int // rebuilt, or moved (Respread), and written to a healthy backend
	Unrecoverable   int // chunks with fewer than minimal_shards valid shards
	// Degraded counts chunks whose placement cannot survive the configured
	// losses with the backends up now (rewritten while backends were
	// down); a later Repair spreads them again.
	Degraded int
	// Respread counts chunks, all of whose shards were valid, that a
	// backend outage had left too concentrated, spread again by moving
	// some of their shards.
	Respread      int
	MetaRewritten int // metadata copies a meta backend lacked or held stale or corrupt
	Errors        []string
}

// Repair reads every shard of every object, rebuilds the missing and
// corrupt ones from the others and writes them to healthy backends
// (keeping the placement's spread), records the new locations, and
// rewrites metadata copies that a meta backend lacks or holds stale. One
// Repair runs at a time; Puts and Gets go on meanwhile.
func (s *Store) Repair(ctx context.Context) (RepairReport, error) {
	s.repairMu.Lock()
	defer s.repairMu.Unlock()
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return RepairReport{}, ErrClosed
	}
	names := slices.Sorted(maps.Keys(s.objects))
	s.mu.RUnlock()
	s.probeDown(ctx)
	var rep RepairReport
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := s.repairObject(ctx, name, &rep); err != nil {
			rep.Errors = append(rep.Errors, err.Error())
		}
	}
	if err := s.repairKeyCheck(ctx, &rep); err != nil {
		rep.Errors = append(rep.Errors, err.Error())
	}
	s.repairs.Add(1)
	s.shardsFixd.Add(uint64(rep.ShardsRewritten))
	s.log.Info("repair_done", "objects", rep.Objects, "missing", rep.ShardsMissing, "corrupt", rep.ShardsCorrupt,
		"rewritten", rep.ShardsRewritten, "unrecoverable", rep.Unrecoverable, "meta_rewritten", rep.MetaRewritten)
	if rep.Unrecoverable > 0 {
		return rep, fmt.Errorf("%w: %d chunks", ErrUnreadable, rep.Unrecoverable)
	}
	return rep, nil
}

// probeDown pings the backends whose last call failed: one back since
// takes shards again in this Repair (rather than after downFor), so that
// chunks rewritten during its outage are spread onto it again.
func (s *Store) probeDown(ctx context.Context) {
	var wg sync.WaitGroup
	for _, b := range append(slices.Clone(s.data), s.meta...) {
		if ok, _ := b.healthy(); !ok {
			wg.Go(func() { _ = b.ping(ctx) })
		}
	}
	wg.Wait()
}

func (s *Store) repairObject(ctx context.Context, name string, rep *RepairReport) error {
	mu := s.stripe(name)
	mu.Lock()
	defer mu.Unlock()
	s.mu.RLock()
	m, ok := s.objects[name]
	s.mu.RUnlock()
	if !ok {
		return nil
	}
	changed := false
	if !m.Deleted {
		rep.Objects++
		m.Chunks = slices.Clone(m.Chunks)
		for i := range m.Chunks {
			c, moved, err := s.repairChunk(ctx, &m, m.Chunks[i], rep)
			if err != nil {
				rep.Errors = append(rep.Errors, fmt.Sprintf("%q chunk %d: %v", name, i, err))
			}
			if moved {
				m.Chunks[i] = c
				changed = true
			}
		}
	}
	if changed {
		v, err := s.nextVersion()
		if err != nil {
			return err
		}
		m.Version = v
		if err := s.commit(ctx, m); err != nil {
			return fmt.Errorf("recording repaired %q: %w", name, err)
		}
		return nil
	}
	return s.repairMeta(ctx, m, rep)
}

// repairChunk checks every shard of a chunk and rewrites the bad ones; it
// returns the chunk with its new locations and whether any moved.
func (s *Store) repairChunk(ctx context.Context, m *objectMeta, c chunkMeta, rep *RepairReport) (chunkMeta, bool, error) {
	rep.Chunks++
	payloads := make([][]byte, m.Total)
	errs := make([]error, m.Total)
	var wg sync.WaitGroup
	for i := range m.Total {
		wg.Go(func() { payloads[i], errs[i] = s.fetchShard(ctx, m, c, i) })
	}
	wg.Wait()
	rep.ShardsChecked += m.Total
	var bad []int
	for i, err := range errs {
		if err == nil {
			continue
		}
		bad = append(bad, i)
		if errors.Is(err, ErrCorrupt) {
			rep.ShardsCorrupt++
		} else {
			rep.ShardsMissing++
		}
	}
	// Place the bad shards on healthy backends, counting the good ones.
	var cand []placeBackend
	pos := map[string]int{}
	for _, pb := range s.cand {
		if b := s.data[pb.idx]; b.up() {
			pos[b.id] = len(cand)
			cand = append(cand, pb)
		}
	}
	respread := false
	if len(bad) == 0 {
		// Every shard is valid; the chunk may still be too concentrated
		// (rewritten during an outage): move shards to spread it again.
		var ok bool
		if bad, ok = s.misplaced(cand, pos, m, c); ok {
			return c, false, nil
		}
		if len(bad) == 0 {
			rep.Degraded++ // cannot do better with the backends up now
			return c, false, nil
		}
		respread = true
	}
	if m.Total-len(bad) < m.Minimal && !respread {
		rep.Unrecoverable++
		return c, false, fmt.Errorf("%w: %d of %d shards valid, need %d", ErrUnreadable, m.Total-len(bad), m.Total, m.Minimal)
	}
	if !respread {
		if err := rebuild(payloads, m.Minimal, m.Total); err != nil {
			return c, false, err
		}
	}
	fixed := unplaced(m.Total)
	for i, err := range errs {
		if err == nil && !slices.Contains(bad, i) {
			p, ok := pos[c.Shards[i].Backend]
			if !ok { // served a shard a moment ago, then failed: count it apart
				p = len(cand)
				cand = append(cand, placeBackend{idx: -1 - i, group: -1 - i})
				pos[c.Shards[i].Backend] = p
			}
			fixed[i] = p
		}
	}
	var targets []int
	for _, groupsFirst := range []bool{true, false} {
		t := placeFill(cand, fixed, int(m.Version%uint64(max(len(cand), 1))), groupsFirst)
		if targets == nil {
			targets = t
		}
		if survives(cand, t, m.Minimal, s.cfg.RedundantGroups, s.cfg.RedundantNodes) == nil {
			targets = t
			break
		}
	}
	if survives(cand, targets, m.Minimal, s.cfg.RedundantGroups, s.cfg.RedundantNodes) != nil {
		rep.Degraded++
	}
	if respread {
		rep.Respread++
	}
	out := c
	out.Shards = slices.Clone(c.Shards)
	moved := false
	var failures []error
	for _, i := range bad {
		pb := cand[targets[i]]
		if pb.idx < 0 {
			failures = append(failures, fmt.Errorf("shard %d: no healthy backend", i))
			continue
		}
		b := s.data[pb.idx]
		if respread && b.id == c.Shards[i].Backend {
			continue // placed where it is
		}
		v := shardValue(payloads[i], i, m.Total, m.Minimal)
		if err := b.set(ctx, c.Shards[i].Key, v); err != nil {
			failures = append(failures, fmt.Errorf("shard %d to %s: %w", i, b.id, err))
			continue
		}
		if old := s.backendByID(c.Shards[i].Backend); old != nil && old != b && old.up() {
			_ = old.del(ctx, c.Shards[i].Key)
		}
		out.Shards[i] = shardMeta{Backend: b.id, Key: c.Shards[i].Key, Sum: v[8:40]}
		rep.ShardsRewritten++
		moved = true
	}
	return out, moved, errors.Join(failures...)
}

// misplaced checks a chunk whose shards are all valid against the
// configured losses, over the backends up now (cand, pos: position by
// backend id). ok when its placement survives them; otherwise the shards
// to move so that it does (none when no placement over the backends up
// would): shards are taken off the most loaded groups and backends one at
// a time until the placement refilled from the rest survives.
func (s *Store) misplaced(cand []placeBackend, pos map[string]int, m *objectMeta, c chunkMeta) (move []int, ok bool) {
	rg, rn := s.cfg.RedundantGroups, s.cfg.RedundantNodes
	fixed := make([]int, m.Total)
	for i, sh := range c.Shards {
		p, found := pos[sh.Backend]
		if !found {
			return nil, true // on a backend down since it was read: next time
		}
		fixed[i] = p
	}
	if survives(cand, fixed, m.Minimal, rg, rn) == nil {
		return nil, true
	}
	for len(move) < m.Total {
		load := map[int]int{}
		gload := map[int]int{}
		for _, p := range fixed {
			if p >= 0 {
				load[p]++
				gload[cand[p].group]++
			}
		}
		pick := -1
		for i, p := range fixed {
			if p < 0 {
				continue
			}
			if pick < 0 {
				pick = i
				continue
			}
			q := fixed[pick]
			a := [2]int{gload[cand[p].group], load[p]}
			b := [2]int{gload[cand[q].group], load[q]}
			if a[0] > b[0] || (a[0] == b[0] && a[1] > b[1]) {
				pick = i
			}
		}
		fixed[pick] = -1
		move = append(move, pick)
		for _, groupsFirst := range []bool{true, false} {
			t := placeFill(cand, fixed, int(m.Version%uint64(max(len(cand), 1))), groupsFirst)
			if survives(cand, t, m.Minimal, rg, rn) == nil {
				return move, false
			}
		}
	}
	return nil, false
}

// repairMeta rewrites the record of m on every meta backend that lacks it
// or holds an older or corrupt copy.
func (s *Store) repairMeta(ctx context.Context, m objectMeta, rep *RepairReport) error {
	key := s.objectKey(m.Name)
	var blob []byte
	var errs []error
	for _, b := range s.meta {
		v, err := b.get(ctx, key)
		if err == nil {
			if got, derr := decodeObject(s.metaA, s.cfg.MetaPrefix, key, m.Name, v); derr == nil && got.Version >= m.Version {
				continue
			}
		} else if !isNotFound(err) {
			errs = append(errs, fmt.Errorf("meta backend %s: %w", b.id, err))
			continue
		}
		if blob == nil {
			if blob, err = sealRecord(s.metaA, s.cfg.MetaPrefix, key, m); err != nil {
				return err
			}
		}
		if err := b.set(ctx, key, blob); err != nil {
			errs = append(errs, fmt.Errorf("meta backend %s: %w", b.id, err))
			continue
		}
		rep.MetaRewritten++
	}
	return errors.Join(errs...)
}

// repairKeyCheck writes the key check to meta backends that lack a copy
// that opens.
func (s *Store) repairKeyCheck(ctx context.Context, rep *RepairReport) error {
	var errs []error
	for _, b := range s.meta {
		v, err := b.get(ctx, s.keyCheckKey())
		if err == nil {
			if _, oerr := openRecord(s.metaA, s.cfg.MetaPrefix, s.keyCheckKey(), v); oerr == nil {
				continue
			}
		} else if !isNotFound(err) {
			errs = append(errs, fmt.Errorf("meta backend %s: %w", b.id, err))
			continue
		}
		blob, err := s.keyCheckRecord()
		if err != nil {
			return err
		}
		if err := b.set(ctx, s.keyCheckKey(), blob); err != nil {
			errs = append(errs, fmt.Errorf("meta backend %s: %w", b.id, err))
			continue
		}
		rep.MetaRewritten++
	}
	return errors.Join(errs...)
}
