package qsfs

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zos-go/zos/internal/zdbclient"
)

// downFor is how long a backend whose last call failed is left out of new
// placements before it is tried again.
const downFor = 3 * time.Second

// backend is one 0-db namespace with its health and counters.
type backend struct {
	cfg   Backend
	id    string
	group int // index in Config.Groups; -1 for a meta backend
	c     *zdbclient.Client

	written, read, failed atomic.Uint64

	mu       sync.Mutex // guards lastErr and failedAt
	lastErr  string
	failedAt time.Time
}

func newBackend(b Backend, group int, cfg *Config) *backend {
	return &backend{cfg: b, id: b.ID(), group: group, c: zdbclient.New(zdbclient.Options{
		Network: "tcp", Addr: b.Address, Namespace: b.Namespace, Password: b.Password,
		Timeout: cfg.Timeout, Dialer: cfg.Dialer, Quiet: cfg.Quiet, MaxIdle: 8, MaxValue: maxShardValue + 1<<20,
	})}
}

// note records the outcome of a call: a missing key is a healthy answer.
func (b *backend) note(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		b.lastErr = ""
		b.failedAt = time.Time{}
		return
	}
	b.failed.Add(1)
	b.lastErr = err.Error()
	b.failedAt = time.Now()
}

// up reports whether the backend may take new shards: its last call did
// not fail within downFor.
func (b *backend) up() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failedAt.IsZero() || time.Since(b.failedAt) > downFor
}

func (b *backend) healthy() (bool, string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failedAt.IsZero(), b.lastErr
}

func (b *backend) set(ctx context.Context, key string, v []byte) error {
	err := b.c.Set(ctx, []byte(key), v)
	b.note(err)
	if err == nil {
		b.written.Add(1)
	}
	return err
}

// get reads a value; a missing key is zdbclient.ErrNotFound and leaves the
// backend healthy.
func (b *backend) get(ctx context.Context, key string) ([]byte, error) {
	v, err := b.c.Get(ctx, []byte(key))
	if err == nil || isNotFound(err) {
		b.note(nil)
	} else {
		b.note(err)
	}
	if err == nil {
		b.read.Add(1)
	}
	return v, err
}

func (b *backend) del(ctx context.Context, key string) error {
	err := b.c.Del(ctx, []byte(key))
	b.note(err)
	return err
}

// ping asks a backend whether it answers, recording the outcome.
func (b *backend) ping(ctx context.Context) error {
	err := b.c.Ping(ctx)
	b.note(err)
	return err
}
