package primitives

import (
	"context"
	"sync"

	"github.com/zos-go/zos/internal/node/qsfs/fs"
	"github.com/zos-go/zos/internal/qsfs"
)

// swapStore is the file system's backend: the qsfs engine, which an
// update replaces (new backends) under the mounted file system. A swap
// waits for the calls in flight and holds new ones until it is done, so
// two engines never write the same metadata at once.
type swapStore struct {
	mu sync.RWMutex // guards s; held for writing while the engine is replaced
	s  *qsfs.Store
}

var _ fs.Backend = (*swapStore)(nil)

func (b *swapStore) Put(ctx context.Context, name string, data []byte) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.s.Put(ctx, name, data)
}

func (b *swapStore) Get(ctx context.Context, name string) ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.s.Get(ctx, name)
}

func (b *swapStore) Delete(ctx context.Context, name string) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.s.Delete(ctx, name)
}

func (b *swapStore) List(ctx context.Context, prefix string) ([]string, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.s.List(ctx, prefix)
}

// Repair runs a repair on the current engine.
func (b *swapStore) Repair(ctx context.Context) (qsfs.RepairReport, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.s.Repair(ctx)
}

// Status is the current engine's status.
func (b *swapStore) Status() qsfs.Status {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.s.Status()
}

// replace runs fn with no call in flight; fn returns the engine to use
// from then on (the same one when it failed).
func (b *swapStore) replace(fn func(old *qsfs.Store) *qsfs.Store) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s = fn(b.s)
}

// Close closes the engine.
func (b *swapStore) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s.Close()
}
