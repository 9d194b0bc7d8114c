package rmb

import (
	"errors"
	"fmt"
	"time"
)

// Error codes of error replies, in the spirit of HTTP status codes.
const (
	CodeMalformed      = 400 // the envelope or payload could not be parsed
	CodeUnauthorized   = 401 // bad signature or unknown source twin
	CodeUnknownCommand = 404 // no handler for the command
	CodeReplay         = 409 // the envelope id was already seen
	CodeExpired        = 410 // past timestamp + ttl, or too far in the future
	CodeTooLarge       = 413 // payload over the limit
	CodeWrongDest      = 421 // the envelope is for another twin
	CodeHandler        = 500 // the handler returned an error
	CodeBusy           = 503 // the receiver is out of capacity
	CodeTimeout        = 504 // the handler did not answer within the ttl
)

// Sentinel errors. A *RemoteError matches the sentinel of its code with
// errors.Is, so callers need not compare codes.
var (
	ErrMalformed      = errors.New("malformed envelope")
	ErrUnauthorized   = errors.New("unauthorized")
	ErrUnknownCommand = errors.New("unknown command")
	ErrReplay         = errors.New("replayed envelope")
	ErrExpired        = errors.New("expired envelope")
	ErrTooLarge       = errors.New("payload too large")
	ErrWrongDest      = errors.New("wrong destination")
	ErrBusy           = errors.New("receiver busy")
	ErrTimeout        = errors.New("timed out")
	// ErrUnreachable is returned by Call when no server listens on the
	// destination twin's inbox.
	ErrUnreachable = errors.New("twin unreachable")
)

// sentinel returns the sentinel error of a code, or nil.
func sentinel(code int) error {
	switch code {
	case CodeMalformed:
		return ErrMalformed
	case CodeUnauthorized:
		return ErrUnauthorized
	case CodeUnknownCommand:
		return ErrUnknownCommand
	case CodeReplay:
		return ErrReplay
	case CodeExpired:
		return ErrExpired
	case CodeTooLarge:
		return ErrTooLarge
	case CodeWrongDest:
		return ErrWrongDest
	case CodeBusy:
		return ErrBusy
	case CodeTimeout:
		return ErrTimeout
	}
	return nil
}

// RemoteError is an error answered by the remote twin: a rejected envelope,
// an unknown command, or the error its handler returned. Handlers may return
// a *RemoteError to choose the code.
type RemoteError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("remote error %d: %s", e.Code, e.Message)
}

// Is matches the sentinel error of the code (ErrReplay for CodeReplay...).
func (e *RemoteError) Is(target error) bool {
	s := sentinel(e.Code)
	return s != nil && s == target
}

func remoteErr(code int, format string, args ...any) *RemoteError {
	return &RemoteError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// skewMessage names a clock skew: the time of what (a request, a reply)
// is d ahead of (behind, when negative) whose clock.
func skewMessage(what string, ts time.Time, d time.Duration, whose string, allowed time.Duration) string {
	dir := "ahead of"
	if d < 0 {
		dir, d = "behind", -d
	}
	return fmt.Sprintf("clock skew: %s time %s is %s %s %s's clock (allowed skew %s)",
		what, ts.UTC().Format(time.RFC3339), d.Round(time.Second), dir, whose, allowed)
}
