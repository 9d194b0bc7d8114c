// Package wait pauses a goroutine for a while, or repeats a call at an
// interval, unless its context ends first.
package wait

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends, whichever comes first. It reports
// whether the whole of d passed (false: ctx ended).
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Every calls f every d until ctx ends, the first time d after the call;
// a call that overruns d delays the next rather than piling calls up. It
// returns once ctx has ended and f is not running, and never calls f after
// ctx has ended.
func Every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ctx.Err() != nil { // both were ready: the end wins
				return
			}
			f()
		}
	}
}
