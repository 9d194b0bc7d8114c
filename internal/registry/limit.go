package registry

import (
	"crypto/ed25519"
	"encoding/json"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"golang.org/x/time/rate"

	"github.com/zos-go/zos/internal/rmb"
)

// Requests from twins reach the registry through the grid's NATS service
// imports, which add a header naming the requester's account and key
// (natsd: "share"). The registry limits each key's request rate, so that no
// requester can fill the queue that every twin shares; requests over the
// limit are dropped before any work (an answer would go to a reply subject
// the requester chose). The grid's own connections carry no such header
// and are not limited.

// requestInfoHeader is the NATS header of a service import's requester.
const requestInfoHeader = "Nats-Request-Info"

// Default per-key limits.
const (
	DefaultKeyRate  = 500 // requests per second, sustained
	DefaultKeyBurst = 1000
	// maxLimited bounds the keys tracked at once; the idle ones are
	// forgotten first.
	maxLimited = 100_000
)

// requester is the key a twin's request came from ("" for the grid's own).
func requester(m *nats.Msg) string {
	if m.Header == nil {
		return ""
	}
	v := m.Header.Get(requestInfoHeader)
	if v == "" {
		return ""
	}
	var ci struct {
		Account string `json:"acc"`
		User    string `json:"user"`
	}
	if err := json.Unmarshal([]byte(v), &ci); err != nil || ci.User == "" {
		return "?" // a twin's request without a readable key: one shared bucket
	}
	return ci.User
}

// keyLimiter holds a token bucket per key.
type keyLimiter struct {
	rate  rate.Limit
	burst int
	now   func() time.Time

	mu   sync.Mutex // guards keys
	keys map[string]*keyBucket
}

type keyBucket struct {
	l    *rate.Limiter
	seen time.Time
}

func newKeyLimiter(perSecond float64, burst int, now func() time.Time) *keyLimiter {
	return &keyLimiter{rate: rate.Limit(perSecond), burst: burst, now: now, keys: map[string]*keyBucket{}}
}

// allow reports whether key may make one more request now.
func (k *keyLimiter) allow(key string) bool {
	if key == "" {
		return true
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b, ok := k.keys[key]
	if !ok {
		if len(k.keys) >= maxLimited {
			k.prune(now)
		}
		b = &keyBucket{l: rate.NewLimiter(k.rate, k.burst)}
		k.keys[key] = b
	}
	b.seen = now
	return b.l.AllowN(now, 1)
}

// prune forgets keys idle long enough for their bucket to be full again;
// if none are, the oldest half. Called with mu held.
func (k *keyLimiter) prune(now time.Time) {
	refill := time.Duration(float64(k.burst)/float64(k.rate)*float64(time.Second)) + time.Second
	for key, b := range k.keys {
		if now.Sub(b.seen) > refill {
			delete(k.keys, key)
		}
	}
	if len(k.keys) < maxLimited {
		return
	}
	n := 0
	for key := range k.keys { // map order: an arbitrary half
		delete(k.keys, key)
		if n++; n >= maxLimited/2 {
			break
		}
	}
}

// busy answers a request the service has no room for.
func (s *Service) busy(op string, m *nats.Msg) {
	if n, ok := s.dropped.Allow("busy"); ok {
		s.log.Warn("registry_busy", "op", op, "suppressed", n)
	}
	b, _ := json.Marshal(response{Error: &wireError{Code: "busy", Message: ErrBusy.Error()}})
	s.reply(op, m, b)
}

// ReplyHeader names the subject a client expects the answer on: its own
// inbox. For twins' requests the registry answers there, and only if it is
// the requester's inbox.
const ReplyHeader = "Zos-Reply"

// inboxOf returns the inbox prefix of an nkey (rmb.InboxPrefix and a dot).
func inboxOf(nkey string) (string, bool) {
	raw, err := nkeys.Decode(nkeys.PrefixByteUser, []byte(nkey))
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return "", false
	}
	return rmb.InboxPrefix(ed25519.PublicKey(raw)) + ".", true
}

// maxPendingPerKey bounds the requests of one key queued or being served
// at once, so that one requester cannot take every worker and queue slot.
const maxPendingPerKey = 32

// pending counts each key's queued and running requests.
type pending struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

// acquire takes a slot for key; false when it has maxPendingPerKey.
func (p *pending) acquire(key string) bool {
	if key == "" {
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == nil {
		p.n = map[string]int{}
	}
	if p.n[key] >= maxPendingPerKey {
		return false
	}
	p.n[key]++
	return true
}

func (p *pending) release(key string) {
	if key == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[key]--; p.n[key] <= 0 {
		delete(p.n, key)
	}
}
