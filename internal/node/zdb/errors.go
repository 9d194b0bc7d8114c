package zdb

import "errors"

// ErrNotFound is returned when a namespace does not exist.
var ErrNotFound = errors.New("namespace not found")

// Errors of the data commands. Their text is the reply 0-db sends, so the
// server writes it as it is.
var (
	ErrNamespaceFull   = errors.New("No space left on this namespace")
	ErrKeyNotFound     = errors.New("Key not found")
	ErrKeyTooLarge     = errors.New("Key too large")
	ErrValueTooLarge   = errors.New("Value too large")
	ErrKeyNeeded       = errors.New("Invalid argument, key needed")
	ErrOnlyUpdate      = errors.New("Invalid key, only update authorized")
	ErrWorm            = errors.New("Namespace is in worm mode")
	ErrReadOnly        = errors.New("Namespace is in read-only mode")
	ErrLocked          = errors.New("Namespace is temporarily locked")
	ErrFrozen          = errors.New("Namespace is temporarily frozen")
	ErrNamespaceGone   = errors.New("Namespace deleted")
	ErrInvalidCursor   = errors.New("Invalid key format")
	ErrNoMoreData      = errors.New("No more data")
	ErrNamespaceExists = errors.New("This namespace is not available")
	ErrBadName         = errors.New("This name is not allowed")
	ErrModeChange      = errors.New("Cannot change mode of a namespace holding data")
	ErrDefaultNS       = errors.New("Cannot remove default namespace")
	ErrCorrupted       = errors.New("Data corrupted")
)
