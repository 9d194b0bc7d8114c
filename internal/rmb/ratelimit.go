package rmb

import (
	"sync"
	"time"
)

// logLimiter lets one log line per reason through per interval, so that a
// flood of bad messages or connections cannot flood the log.
type logLimiter struct {
	interval time.Duration

	mu   sync.Mutex // guards last and hits
	last map[string]time.Time
	hits map[string]int
}

const logLimiterMaxReasons = 256

func newLogLimiter() *logLimiter {
	return &logLimiter{interval: time.Second, last: make(map[string]time.Time), hits: make(map[string]int)}
}

// allow reports whether to log reason now, and how many were suppressed
// since the last time.
func (l *logLimiter) allow(reason string) (suppressed int, ok bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, seen := l.last[reason]; seen && now.Sub(t) < l.interval {
		l.hits[reason]++
		return 0, false
	}
	if len(l.last) >= logLimiterMaxReasons {
		clear(l.last)
		clear(l.hits)
	}
	n := l.hits[reason]
	l.last[reason] = now
	l.hits[reason] = 0
	return n, true
}
