package fs

import (
	"context"
	"fmt"
	"sort"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// A full checkpoint replaces the journal once the journal records since
// the last one outweigh it (plus this slack), or there are this many.
const (
	journalSlack   = 1 << 20
	journalRecords = 4096
)

// load reads the newest full checkpoint and the journal records after it,
// or makes an empty tree. It returns the tree and the full checkpoint's
// generation (0 for a new tree).
func (f *FS) load() (*tree, uint64, error) {
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.OpTimeout)
	defer cancel()
	names, err := f.backend.List(ctx, "qsfs-")
	if err != nil {
		return nil, 0, fmt.Errorf("listing metadata: %w", err)
	}
	var fulls, jrnls []uint64
	for _, n := range names {
		if g, ok := parseGen(n, metaPrefix); ok {
			fulls = append(fulls, g)
		} else if g, ok := parseGen(n, jrnlPrefix); ok {
			jrnls = append(jrnls, g)
		}
	}
	if len(fulls) == 0 {
		if len(jrnls) > 0 {
			return nil, 0, fmt.Errorf("backend holds %d journal records but no full checkpoint", len(jrnls))
		}
		now := time.Now().UnixNano()
		root := &inode{Ino: rootIno, Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Parent: rootIno,
			Atime: now, Mtime: now, Ctime: now, Entries: map[string]uint64{}}
		return &tree{Version: metaVersion, BlockSize: f.cfg.BlockSize, NextIno: rootIno + 1,
			Inodes: map[uint64]*inode{rootIno: root}}, 0, nil
	}
	full := fulls[0]
	for _, g := range fulls {
		full = max(full, g)
	}
	b, err := f.backend.Get(ctx, metaName(full))
	if err != nil {
		return nil, 0, fmt.Errorf("reading metadata checkpoint %d: %w", full, err)
	}
	t, err := decodeTree(b)
	if err != nil {
		return nil, 0, fmt.Errorf("metadata checkpoint %d: %w", full, err)
	}
	if t.Gen != full {
		return nil, 0, fmt.Errorf("metadata checkpoint %d says generation %d", full, t.Gen)
	}
	sort.Slice(jrnls, func(i, j int) bool { return jrnls[i] < jrnls[j] })
	for _, g := range jrnls {
		if g <= full {
			continue // replaced by the checkpoint; its deletion failed
		}
		if g != t.Gen+1 {
			return nil, 0, fmt.Errorf("journal record %d is missing before record %d", t.Gen+1, g)
		}
		b, err := f.backend.Get(ctx, jrnlName(g))
		if err != nil {
			return nil, 0, fmt.Errorf("reading journal record %d: %w", g, err)
		}
		r, err := decodeRecord(b)
		if err != nil {
			return nil, 0, fmt.Errorf("journal record %d: %w", g, err)
		}
		if err := t.apply(r); err != nil {
			return nil, 0, err
		}
	}
	if err := t.check(); err != nil {
		return nil, 0, fmt.Errorf("metadata at generation %d: %w", t.Gen, err)
	}
	return t, full, nil
}

// Sync makes everything written so far durable on the backend: it seals
// the open blocks, uploads the blocks the changed inodes name that are not
// there yet, then writes one metadata record (a journal record of the
// changed inodes, or now and then a full checkpoint), and only then
// deletes blocks nothing names any more. A record names only uploaded
// blocks and is one object, so the backend always holds a whole tree.
func (f *FS) Sync(ctx context.Context) error {
	f.syncMu.Lock()
	defer f.syncMu.Unlock()
	// Room for the open blocks about to be sealed, so sealing them
	// (other writers' blocks too) keeps the cache within its bound.
	f.mu.Lock()
	openBytes := int64(len(f.open)) * f.bs
	f.mu.Unlock()
	release, err := f.makeRoom(ctx, openBytes, true)
	if err != nil {
		return err
	}
	defer release()
	f.mu.Lock()
	if err := f.sealAllLocked(); err != nil {
		f.mu.Unlock()
		return err
	}
	if len(f.dirtyInos) == 0 && f.fullGen != 0 {
		f.synced = f.changes
		f.mu.Unlock()
		return nil // the last record holds it all
	}
	snap := f.changes
	gen := f.t.Gen + 1
	prevFull := f.fullGen
	full := prevFull == 0 || f.jrnlBytes > f.fullBytes+journalSlack || gen-prevFull > journalRecords
	b, refs, err := encodeRecord(f.t, gen, full, f.dirtyInos)
	dirty := f.dirtyInos
	f.dirtyInos = map[uint64]struct{}{}
	f.pinned = refs
	f.mu.Unlock()
	ok := false
	defer func() {
		f.mu.Lock()
		f.pinned = nil
		if !ok { // the changes go into the next record
			for ino := range dirty {
				f.dirtyInos[ino] = struct{}{}
			}
		}
		f.mu.Unlock()
	}()
	if err != nil {
		return err
	}
	if err := f.uploadAll(ctx, refs); err != nil {
		return err
	}
	name := jrnlName(gen)
	if full {
		name = metaName(gen)
	}
	octx, cancel := context.WithTimeout(ctx, f.cfg.OpTimeout)
	defer cancel()
	if err := f.backend.Put(octx, name, b); err != nil {
		return fmt.Errorf("writing metadata record %d: %w", gen, err)
	}
	ok = true
	f.stats.checkpoints.Add(1)
	f.mu.Lock()
	f.t.Gen = gen
	f.synced = snap
	if full {
		f.fullGen, f.fullBytes, f.jrnlBytes = gen, int64(len(b)), 0
	} else {
		f.jrnlBytes += int64(len(b))
	}
	f.mu.Unlock()
	// What a full checkpoint replaces goes, then blocks nothing names; a
	// failure here leaves garbage, never a hole.
	if full && prevFull > 0 {
		f.deleteObject(octx, metaName(prevFull))
		for g := prevFull + 1; g < gen; g++ {
			f.deleteObject(octx, jrnlName(g))
		}
	}
	f.collect(octx, snap)
	return nil
}

func (f *FS) deleteObject(ctx context.Context, name string) {
	if err := f.backend.Delete(ctx, name); err != nil && !f.cfg.IsNotFound(err) {
		f.log.Warn("delete_object", "name", name, "err", err)
	}
}

// uploadAll uploads the dirty blocks among refs, a few at a time.
func (f *FS) uploadAll(ctx context.Context, refs map[hash]struct{}) error {
	var todo []hash
	f.cache.mu.Lock()
	for h := range refs {
		if e := f.cache.ents[h]; e != nil && e.dirty {
			todo = append(todo, h)
		}
	}
	f.cache.mu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, h := range todo {
		g.Go(func() error { return f.upload(gctx, h) })
	}
	return g.Wait()
}

// collect deletes from the backend the blocks nothing names that were
// already unnamed at change snap, which the record just written covers:
// no durable record names them.
func (f *FS) collect(ctx context.Context, snap uint64) {
	f.gcMu.Lock()
	defer f.gcMu.Unlock()
	var victims []hash
	f.mu.Lock()
	for h, at := range f.garbage {
		if f.refs[h] > 0 {
			delete(f.garbage, h)
			continue
		}
		if at > snap {
			continue
		}
		victims = append(victims, h)
		delete(f.garbage, h)
		f.cache.drop(h)
	}
	f.mu.Unlock()
	for _, h := range victims {
		f.deleteObject(ctx, blockName(h))
	}
}
