package registry

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// twinKeys is an in-memory map of twin public keys to twin ids, fed by a
// watch of the index bucket. The relay's NATS authenticator asks it on
// every connection, so it must answer without I/O.
type twinKeys struct {
	mu    sync.RWMutex
	byKey map[string]uint32 // hex public key -> twin id; guarded by mu
}

func (k *twinKeys) lookup(pub ed25519.PublicKey) (uint32, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	id, ok := k.byKey[hex.EncodeToString(pub)]
	return id, ok
}

func (k *twinKeys) set(keyHex string, id uint32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.byKey == nil {
		k.byKey = map[string]uint32{}
	}
	k.byKey[keyHex] = id
}

// watch follows the twinkey.* index entries until ctx ends, re-watching
// after a failure (a lost server, a restart).
func (k *twinKeys) watch(ctx context.Context, index jetstream.KeyValue, log *slog.Logger) error {
	for {
		err := k.watchOnce(ctx, index)
		if ctx.Err() != nil {
			return nil
		}
		log.Warn("twin_key_watch_failed", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (k *twinKeys) watchOnce(ctx context.Context, index jetstream.KeyValue) error {
	w, err := index.Watch(ctx, "twinkey.*", jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("watching twin keys: %w", err)
	}
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watching twin keys: watcher closed")
			}
			if e == nil {
				continue
			}
			id, err := strconv.ParseUint(string(e.Value()), 10, 32)
			if err != nil {
				continue
			}
			k.set(strings.TrimPrefix(e.Key(), "twinkey."), uint32(id))
		}
	}
}

// LookupTwin returns the twin of a public key from memory (no I/O), for
// the relay's NATS authenticator. It knows the twins the service has seen
// since Run started; a twin created a moment ago may take a few
// milliseconds to appear.
func (s *Service) LookupTwin(pub ed25519.PublicKey) (uint32, bool) {
	return s.keys.lookup(pub)
}
