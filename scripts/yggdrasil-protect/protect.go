// Package protect stands in for suah.dev/protect, which the module proxy
// does not serve, when scripts/yggdrasil.sh builds the yggdrasil daemon.
//
// The real package wraps OpenBSD's pledge(2) and unveil(2). On Linux its
// Pledge is a no-op, and so is this one: the daemon calls only Pledge, so
// the daemon built with this package behaves as the one built with the
// real package does on Linux. The real package's Linux Unveil uses
// Landlock; this one does not implement it and refuses, so that a program
// that relied on it would not silently run unconfined. The real package's
// ReducePledges is left out (nothing here calls it).
package protect

import "errors"

// errNoUnveil is what the Unveil calls return: Landlock is not implemented
// in this stand-in.
var errNoUnveil = errors.New("unveil: not implemented by this stand-in for suah.dev/protect (no Landlock)")

// Pledge restricts system calls on OpenBSD; on Linux (as in the real
// package) it does nothing.
func Pledge(promises string) error { return nil }

// Unveil is not implemented (the real package uses Landlock on Linux).
func Unveil(path, flags string) error { return errNoUnveil }

// UnveilSet is not implemented (see Unveil).
func UnveilSet(set map[string]string, block bool) error { return errNoUnveil }

// UnveilBlock is not implemented (see Unveil).
func UnveilBlock() error { return errNoUnveil }
