package rmb

import "time"

// Defaults of the relay. The NATS server must accept messages of
// DefaultMaxPayload + SealOverhead + Overhead + MaxCommandLen bytes: set its
// max_payload to 8 MiB (the NATS default is 1 MiB).
const (
	DefaultMaxPayload   = 4 << 20
	DefaultTTL          = 30 * time.Second
	DefaultMaxTTL       = 5 * time.Minute
	DefaultMaxSkew      = 30 * time.Second
	DefaultKeyCacheTTL  = 10 * time.Minute
	DefaultKeyCacheSize = 10000
	DefaultReplayCache  = 1 << 19
	DefaultConcurrency  = 64
	DefaultPending      = 4096
	shutdownGrace       = 5 * time.Second
)

// Option changes a default of a Client or a Server.
type Option func(*options)

type options struct {
	now           func() time.Time
	callTimeout   time.Duration
	maxPayload    int
	defaultTTL    time.Duration
	maxTTL        time.Duration
	maxSkew       time.Duration
	keyCacheTTL   time.Duration
	keyCacheSize  int
	replayEntries int
	concurrency   int
	pending       int
}

func buildOptions(opts []Option) *options {
	o := &options{
		now:           time.Now,
		maxPayload:    DefaultMaxPayload,
		defaultTTL:    DefaultTTL,
		maxTTL:        DefaultMaxTTL,
		maxSkew:       DefaultMaxSkew,
		keyCacheTTL:   DefaultKeyCacheTTL,
		keyCacheSize:  DefaultKeyCacheSize,
		replayEntries: DefaultReplayCache,
		concurrency:   DefaultConcurrency,
		pending:       DefaultPending,
	}
	for _, f := range opts {
		f(o)
	}
	return o
}

// WithClock sets the clock used for timestamps and expiry (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithCallTimeout bounds each call of a Client, within its context's
// deadline: a call sent while the twin or the grid is away fails after d
// (ErrTimeout) rather than at the caller's overall deadline, so a caller
// waiting for something can ask again. 0 (the default) bounds a call by
// its context alone (and the largest ttl).
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.callTimeout = d
		}
	}
}

// WithMaxPayload sets the largest plaintext payload sent or accepted.
func WithMaxPayload(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxPayload = n
		}
	}
}

// WithTTL sets the ttl of calls whose context has no deadline, and the
// largest ttl sent or accepted (which bounds the replay cache's memory).
func WithTTL(def, max time.Duration) Option {
	return func(o *options) {
		if def > 0 {
			o.defaultTTL = def
		}
		if max > 0 {
			o.maxTTL = max
		}
	}
}

// WithMaxSkew sets how far in the future a timestamp may be.
func WithMaxSkew(d time.Duration) Option {
	return func(o *options) {
		if d >= 0 {
			o.maxSkew = d
		}
	}
}

// WithKeyCache sets how long resolved twin keys are cached and how many.
func WithKeyCache(ttl time.Duration, entries int) Option {
	return func(o *options) {
		if ttl > 0 {
			o.keyCacheTTL = ttl
		}
		if entries > 0 {
			o.keyCacheSize = entries
		}
	}
}

// WithReplayCache sets how many recent envelope ids a server remembers.
// When it is full of unexpired ids, new requests are refused as busy.
func WithReplayCache(entries int) Option {
	return func(o *options) {
		if entries > 0 {
			o.replayEntries = entries
		}
	}
}

// WithConcurrency sets how many requests a server handles at once, and how
// many received messages may wait for a worker.
func WithConcurrency(workers, pending int) Option {
	return func(o *options) {
		if workers > 0 {
			o.concurrency = workers
		}
		if pending > 0 {
			o.pending = pending
		}
	}
}
