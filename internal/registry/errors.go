package registry

import (
	"errors"
	"fmt"
)

// Errors of the registry. They travel over NATS as codes and come back as
// these sentinels (wrapped with the service's message), so callers use
// errors.Is on both sides.
var (
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("unauthorized")
	ErrBadSignature = errors.New("bad signature")
	ErrReplay       = errors.New("replayed request")
	ErrExpired      = errors.New("request timestamp outside the allowed window")
	ErrInvalid      = errors.New("invalid request")
	ErrTooLarge     = errors.New("request too large")
	ErrNoFreeIP     = errors.New("not enough free public ips in the farm")
	ErrNameTaken    = errors.New("name taken")
	ErrExists       = errors.New("already exists")
	ErrCanceled     = errors.New("contract canceled")
	ErrNodeRented   = errors.New("node rented by another twin")
	ErrConflict     = errors.New("too many concurrent updates")
	ErrNoTwin       = errors.New("key has no twin")
	ErrInternal     = errors.New("registry internal error")
	ErrBusy         = errors.New("registry busy, retry later")
	// ErrStoreFull: the grid's store refuses writes (its file system is
	// under the reserve, or JetStream recovers from a failed write).
	ErrStoreFull = errors.New("grid store full")
	// ErrInsufficientFunds: a balance cannot pay a transfer or a bill.
	ErrInsufficientFunds = errors.New("insufficient funds")
)

// errorCodes maps sentinels to their wire codes.
var errorCodes = []struct {
	code string
	err  error
}{
	{"not_found", ErrNotFound},
	{"unauthorized", ErrUnauthorized},
	{"bad_signature", ErrBadSignature},
	{"replay", ErrReplay},
	{"expired", ErrExpired},
	{"invalid", ErrInvalid},
	{"too_large", ErrTooLarge},
	{"no_free_ip", ErrNoFreeIP},
	{"name_taken", ErrNameTaken},
	{"exists", ErrExists},
	{"canceled", ErrCanceled},
	{"node_rented", ErrNodeRented},
	{"conflict", ErrConflict},
	{"no_twin", ErrNoTwin},
	{"internal", ErrInternal},
	{"busy", ErrBusy},
	{"store_full", ErrStoreFull},
	{"overflow", ErrOverflow},
	{"insufficient_funds", ErrInsufficientFunds},
}

// codeOf returns the wire code of err ("internal" when it wraps no
// sentinel).
func codeOf(err error) string {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// errorOf turns a wire error back into an error wrapping its sentinel.
func errorOf(code, msg string) error {
	for _, c := range errorCodes {
		if c.code == code {
			return &remoteError{sentinel: c.err, msg: msg}
		}
	}
	return &remoteError{sentinel: ErrInternal, msg: fmt.Sprintf("%s (code %q)", msg, code)}
}

// remoteError is an error reported by the registry service.
type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return "registry: " + e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }
