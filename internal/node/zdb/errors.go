package zdb

import (
	"errors"
	"strings"
)

// ErrNotFound is returned when a namespace does not exist.
var ErrNotFound = errors.New("namespace not found")

// Errors of the data commands. Their text is the reply 0-db sends, which
// the server writes capitalized as 0-db does (see replyText).
var (
	ErrNamespaceFull   = errors.New("no space left on this namespace")
	ErrKeyNotFound     = errors.New("key not found")
	ErrKeyTooLarge     = errors.New("key too large")
	ErrValueTooLarge   = errors.New("value too large")
	ErrKeyNeeded       = errors.New("invalid argument, key needed")
	ErrOnlyUpdate      = errors.New("invalid key, only update authorized")
	ErrWorm            = errors.New("namespace is in worm mode")
	ErrReadOnly        = errors.New("namespace is in read-only mode")
	ErrLocked          = errors.New("namespace is temporarily locked")
	ErrFrozen          = errors.New("namespace is temporarily frozen")
	ErrNamespaceGone   = errors.New("namespace deleted")
	ErrInvalidCursor   = errors.New("invalid key format")
	ErrNoMoreData      = errors.New("no more data")
	ErrNamespaceExists = errors.New("this namespace is not available")
	ErrBadName         = errors.New("this name is not allowed")
	ErrModeChange      = errors.New("cannot change mode of a namespace holding data")
	ErrDefaultNS       = errors.New("cannot remove default namespace")
	ErrCorrupted       = errors.New("data corrupted")
	// ErrPaused refuses writes to a namespace the node paused (its
	// contract's grace period); reads go on.
	ErrPaused = errors.New("namespace is paused: its contract is in its grace period, writes resume when it is paid")
)

// replyText is the text 0-db replies for err, one of the errors above: its
// words with the first letter capitalized.
func replyText(err error) string {
	s := err.Error()
	return strings.ToUpper(s[:1]) + s[1:]
}
