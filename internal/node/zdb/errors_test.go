package zdb

import "testing"

// TestReplyText pins the replies 0-db sends for the data commands' errors.
func TestReplyText(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ErrNamespaceFull, "No space left on this namespace"},
		{ErrKeyNotFound, "Key not found"},
		{ErrKeyTooLarge, "Key too large"},
		{ErrValueTooLarge, "Value too large"},
		{ErrKeyNeeded, "Invalid argument, key needed"},
		{ErrOnlyUpdate, "Invalid key, only update authorized"},
		{ErrWorm, "Namespace is in worm mode"},
		{ErrReadOnly, "Namespace is in read-only mode"},
		{ErrLocked, "Namespace is temporarily locked"},
		{ErrFrozen, "Namespace is temporarily frozen"},
		{ErrNamespaceGone, "Namespace deleted"},
		{ErrInvalidCursor, "Invalid key format"},
		{ErrNoMoreData, "No more data"},
		{ErrNamespaceExists, "This namespace is not available"},
		{ErrBadName, "This name is not allowed"},
		{ErrModeChange, "Cannot change mode of a namespace holding data"},
		{ErrDefaultNS, "Cannot remove default namespace"},
		{ErrCorrupted, "Data corrupted"},
		{ErrPaused, "Namespace is paused: its contract is in its grace period, writes resume when it is paid"},
	}
	if len(tests) != len(replyErrors) {
		t.Fatalf("got %d replied errors, want %d", len(replyErrors), len(tests))
	}
	for _, tt := range tests {
		if got := replyText(tt.err); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
