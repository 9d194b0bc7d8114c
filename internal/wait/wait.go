// Package wait pauses a goroutine for a while, unless its context ends first.
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
