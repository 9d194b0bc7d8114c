// Package loglimit keeps a flood of bad input from flooding the log: it
// lets one line per reason through per interval and counts the others.
// The relay server (internal/rmb) and the NATS authenticator
// (internal/natsd) use it.
package loglimit

import (
	"sync"
	"time"
)

// Limiter lets one log line per reason through per interval, so that a
// flood of bad messages or connections cannot flood the log.
type Limiter struct {
	interval time.Duration

	mu   sync.Mutex // guards last and hits
	last map[string]time.Time
	hits map[string]int
}

// maxReasons bounds the reasons remembered; past it all are forgotten.
const maxReasons = 256

// New returns a limiter letting one line per reason through per interval.
func New(interval time.Duration) *Limiter {
	return &Limiter{interval: interval, last: make(map[string]time.Time), hits: make(map[string]int)}
}

// Allow reports whether to log reason now, and how many were suppressed
// since the last time.
func (l *Limiter) Allow(reason string) (suppressed int, ok bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, seen := l.last[reason]; seen && now.Sub(t) < l.interval {
		l.hits[reason]++
		return 0, false
	}
	if len(l.last) >= maxReasons {
		clear(l.last)
		clear(l.hits)
	}
	n := l.hits[reason]
	l.last[reason] = now
	l.hits[reason] = 0
	return n, true
}
