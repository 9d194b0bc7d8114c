package rmb

import (
	"context"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// TwinResolver returns the ed25519 key of a twin. The registry client
// implements it; rmb caches its answers (Options.KeyCacheTTL).
type TwinResolver interface {
	TwinKey(ctx context.Context, twin uint32) (ed25519.PublicKey, error)
}

// peer is what we know of another twin: its key and the AEAD we share.
type peer struct {
	twin    uint32
	pub     ed25519.PublicKey
	aead    cipher.AEAD
	fetched time.Time
}

// peers caches resolved twin keys and the derived AEADs, bounded in size.
type peers struct {
	selfPub  ed25519.PublicKey
	selfPriv *ecdh.PrivateKey
	r        TwinResolver
	ttl      time.Duration
	max      int
	now      func() time.Time

	mu     sync.Mutex // guards m and missed
	m      map[uint32]*peer
	missed map[uint32]missEntry
}

// missEntry remembers a failed resolution for a short while, so that
// envelopes naming unknown twins do not each cost a registry lookup.
type missEntry struct {
	at  time.Time
	err error
}

// missTTL is how long a failed resolution is remembered.
const missTTL = 2 * time.Second

func newPeers(key identity.Key, r TwinResolver, o *options) (*peers, error) {
	priv, err := x25519Private(key)
	if err != nil {
		return nil, err
	}
	return &peers{
		selfPub:  key.Public(),
		selfPriv: priv,
		r:        r,
		ttl:      o.keyCacheTTL,
		max:      o.keyCacheSize,
		now:      o.now,
		m:        make(map[uint32]*peer),
		missed:   make(map[uint32]missEntry),
	}, nil
}

// get returns the twin's key and AEAD, from the cache when fresh.
func (p *peers) get(ctx context.Context, twin uint32) (*peer, error) {
	now := p.now()
	p.mu.Lock()
	e, ok := p.m[twin]
	miss, missed := p.missed[twin]
	p.mu.Unlock()
	if ok && now.Sub(e.fetched) < p.ttl {
		return e, nil
	}
	if missed && now.Sub(miss.at) < missTTL {
		return nil, miss.err
	}
	e, err := p.fetch(ctx, twin)
	if err != nil && ctx.Err() == nil {
		p.mu.Lock()
		if len(p.missed) >= p.max {
			clear(p.missed)
		}
		p.missed[twin] = missEntry{at: now, err: err}
		p.mu.Unlock()
	}
	return e, err
}

// refresh re-resolves a twin whose cached key failed to verify a signature
// (the twin may have changed keys), unless the entry is very recent: a
// forger must not be able to make us hit the registry for every message.
func (p *peers) refresh(ctx context.Context, twin uint32, stale *peer) (*peer, bool) {
	if p.now().Sub(stale.fetched) < refreshMinAge {
		return nil, false
	}
	e, err := p.fetch(ctx, twin)
	if err != nil || e.pub.Equal(stale.pub) {
		return nil, false
	}
	return e, true
}

// refreshMinAge is how old a cached key must be before a failed signature
// makes us resolve it again.
const refreshMinAge = 10 * time.Second

func (p *peers) fetch(ctx context.Context, twin uint32) (*peer, error) {
	if p.r == nil {
		return nil, fmt.Errorf("resolving twin %d: no resolver", twin)
	}
	pub, err := p.r.TwinKey(ctx, twin)
	if err != nil {
		return nil, fmt.Errorf("resolving twin %d: %w", twin, err)
	}
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("resolving twin %d: key is %d bytes, want %d", twin, len(pub), ed25519.PublicKeySize)
	}
	aead, err := deriveAEAD(p.selfPriv, p.selfPub, pub)
	if err != nil {
		return nil, fmt.Errorf("twin %d: %w", twin, err)
	}
	e := &peer{twin: twin, pub: pub, aead: aead, fetched: p.now()}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[twin]; !ok && len(p.m) >= p.max {
		for k := range p.m { // evict one arbitrary entry
			delete(p.m, k)
			break
		}
	}
	p.m[twin] = e
	delete(p.missed, twin)
	return e, nil
}
