package rtnl

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// dumpTries bounds how often a dump is repeated when the kernel reports
// that the table changed while it was being read.
const dumpTries = 10

// dump runs a netlink dump (a list of links, addresses, routes or
// neighbours) again while the kernel marks it interrupted: the table
// changed meanwhile (another namespace's links came or went), so the
// answer may miss entries or hold stale ones. A dump still interrupted
// after dumpTries is an error.
func dump[T any](list func() ([]T, error)) ([]T, error) {
	var (
		out []T
		err error
	)
	for range dumpTries {
		out, err = list()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}
