package storage

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/zos-go/zos/internal/wait"
)

// Cache returns the directory of the node's persistent state and whether it
// is a limited tmpfs fallback (no pool could hold it).
func (m *Module) Cache() (path string, limited bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cacheDir, m.limited
}

// CacheReserved is the cache quota, counted as reserved SSD (or HDD)
// capacity; 0 for the tmpfs fallback.
func (m *Module) CacheReserved() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cacheLim
}

// setupCacheLocked keeps an existing zos-cache (found by the scan), else
// creates one SSD first, else mounts a tmpfs and raises the limited flag.
func (m *Module) setupCacheLocked() error {
	if m.cache != nil && m.healthLocked(m.cache) == nil {
		m.cacheDir = filepath.Join(m.cache.path, cacheName)
		if m.cacheLim == 0 {
			if err := m.sys.Quotas.Limit(m.cacheDir, m.cfg.CacheStep); err != nil {
				return fmt.Errorf("limiting cache on pool %s: %w", m.cache.name, err)
			}
			m.cacheLim = m.cfg.CacheStep
			m.cache.allocated += m.cfg.CacheStep
		}
		// Fit the quota to what the cache holds now, before anyone writes.
		for i := 0; i < 64; i++ {
			changed, err := m.adjustCacheLocked()
			if err != nil {
				m.log.Warn("cache_quota_check_failed", "err", err)
			}
			if !changed || err != nil {
				break
			}
		}
		m.log.Info("cache_found", "pool", m.cache.name, "limit", m.cacheLim)
		return nil
	}
	if m.cache != nil { // on a broken pool: give its space back, look again
		m.cache.allocated -= min(m.cache.allocated, m.cacheLim)
		m.cache, m.cacheLim = nil, 0
	}
	m.refreshLocked()
	p, err := choose(m.pools, SSDFirst, m.cfg.CacheStep, nil)
	if err == nil {
		dir := filepath.Join(p.path, cacheName)
		err = m.sys.FS.SubvolumeCreate(dir)
		if err == nil {
			if err = m.sys.Quotas.Limit(dir, m.cfg.CacheStep); err != nil {
				_ = m.sys.FS.SubvolumeDelete(dir)
			}
		}
		if err == nil {
			m.cache, m.cacheLim, m.cacheDir = p, m.cfg.CacheStep, dir
			p.allocated += m.cfg.CacheStep
			m.log.Info("cache_created", "pool", p.name, "limit", m.cacheLim)
			return nil
		}
		err = fmt.Errorf("creating cache on pool %s: %w", p.name, err)
	}
	m.log.Warn("cache_limited", "reason", err)
	dir := filepath.Join(m.cfg.Root, cacheName)
	if err := m.sys.Mounts.Mount("tmpfs", dir, "tmpfs", fmt.Sprintf("size=%d,mode=0700", m.cfg.CacheTmpfsSize)); err != nil {
		return fmt.Errorf("mounting tmpfs cache: %w", err)
	}
	m.tmpfs, m.cacheDir, m.limited = dir, dir, true
	return nil
}

// cacheLoop checks the cache quota every CacheCheckInterval until ctx ends.
func (m *Module) cacheLoop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	wait.Every(ctx, m.cfg.CacheCheckInterval, func() {
		if err := m.AdjustCache(); err != nil {
			m.log.Warn("cache_quota_check_failed", "err", err)
		}
	})
}

// AdjustCache grows or shrinks the cache quota once (the loop calls it).
func (m *Module) AdjustCache() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, err := m.adjustCacheLocked()
	return err
}

func (m *Module) adjustCacheLocked() (changed bool, err error) {
	p := m.cache
	if p == nil {
		return false, nil
	}
	if err := m.healthLocked(p); err != nil {
		return false, fmt.Errorf("checking cache quota: %w", err)
	}
	q, err := m.sys.Quotas.Qgroup(m.cacheDir)
	if err != nil {
		return false, fmt.Errorf("checking cache quota on pool %s: %w", p.name, err)
	}
	next := nextCacheLimit(q.Exclusive, m.cacheLim, m.cfg.CacheStep)
	if next == m.cacheLim {
		return false, nil
	}
	if next > m.cacheLim && p.free() < next-m.cacheLim {
		return false, fmt.Errorf("growing cache on pool %s to %s: %s free: %w", p.name, sizeString(next), sizeString(p.free()), ErrNoSpace)
	}
	if err := m.sys.Quotas.Limit(m.cacheDir, next); err != nil {
		return false, fmt.Errorf("resizing cache on pool %s: %w", p.name, err)
	}
	m.log.Info("cache_quota_changed", "pool", p.name, "from", m.cacheLim, "to", next, "used", q.Exclusive)
	p.allocated = p.allocated - min(p.allocated, m.cacheLim) + next
	m.cacheLim = next
	return true, nil
}

// nextCacheLimit is the cache quota policy: grow by a step at 60% use, shrink
// below 20% to twice the use rounded up to a step, never below one step.
func nextCacheLimit(used, limit, step uint64) uint64 {
	switch {
	case limit < step:
		return step
	case used*100/limit >= 60:
		return limit + step
	case used*100/limit < 20 && limit > step:
		next := (2*used + step - 1) / step * step
		return max(next, step)
	}
	return limit
}
