package fs

import "context"

// prefetchAhead is how many blocks past a cold read are fetched ahead.
const prefetchAhead = 4

// fetchOnce fetches a block from the backend, once at a time per block:
// a second reader waits for the running fetch, then reads the cache.
func (f *FS) fetchOnce(ctx context.Context, h hash) ([]byte, error) {
	for {
		f.fmu.Lock()
		ch, running := f.fetching[h]
		if !running {
			ch = make(chan struct{})
			f.fetching[h] = ch
		}
		f.fmu.Unlock()
		if !running {
			break
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if data, ok, err := f.cache.read(h); err != nil || ok {
			return data, err
		}
		// the other fetch failed or its block was evicted: fetch here
	}
	data, err := f.fetch(ctx, h)
	if err == nil {
		// Room first, so a fetched block never takes the cache over its
		// bound; a read is served even when there is none now (the
		// backend refuses the backlog): the block is then not cached.
		release, rerr := f.makeRoom(ctx, int64(len(data)), false)
		if rerr != nil {
			f.log.Warn("cache_full", "block", h.String(), "err", rerr)
		} else {
			if perr := f.cache.put(h, data, false); perr != nil {
				f.log.Warn("cache_put", "block", h.String(), "err", perr)
			}
			release()
		}
	}
	f.fmu.Lock()
	ch := f.fetching[h]
	delete(f.fetching, h)
	f.fmu.Unlock()
	close(ch)
	return data, err
}

// prefetch fetches the blocks of ino from index from on into the cache in
// the background, a few at a time; a full pipeline skips rather than waits.
func (f *FS) prefetch(ino uint64, from int64) {
	var todo []hash
	f.mu.Lock()
	if in := f.t.Inodes[ino]; in != nil {
		for idx := from; idx < from+prefetchAhead; idx++ {
			if h, ok := in.Blocks[idx]; ok && f.open[bkey{ino, idx}] == nil {
				todo = append(todo, h)
			}
		}
	}
	f.mu.Unlock()
	for _, h := range todo {
		f.cache.mu.Lock()
		cached := f.cache.ents[h] != nil
		f.cache.mu.Unlock()
		f.fmu.Lock()
		_, running := f.fetching[h]
		f.fmu.Unlock()
		if cached || running {
			continue
		}
		select {
		case f.psem <- struct{}{}:
		default:
			return
		}
		f.fmu.Lock()
		if f.stopped {
			f.fmu.Unlock()
			<-f.psem
			return
		}
		f.pwg.Add(1)
		f.fmu.Unlock()
		go func() {
			defer f.pwg.Done()
			defer func() { <-f.psem }()
			if _, err := f.blockData(f.ctx, h); err != nil && f.ctx.Err() == nil {
				f.log.Debug("prefetch", "block", h.String(), "err", err)
			}
		}()
	}
}
