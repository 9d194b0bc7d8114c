// Package term answers whether a file descriptor is a terminal, so that
// commands choose between a live progress display and plain lines.
package term

import "golang.org/x/sys/unix"

// IsTerminal reports whether fd is a terminal.
func IsTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}
