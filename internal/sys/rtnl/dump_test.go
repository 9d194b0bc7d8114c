package rtnl

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

// An interrupted dump is read again; one that stays interrupted is an
// error; other errors are not retried.
func TestDumpRetriesInterrupted(t *testing.T) {
	calls := 0
	got, err := dump(func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted
		}
		return []int{1, 2}, nil
	})
	if err != nil || len(got) != 2 || calls != 3 {
		t.Fatalf("got %v, %v after %d calls; want [1 2] after 3", got, err, calls)
	}

	calls = 0
	_, err = dump(func() ([]int, error) { calls++; return nil, netlink.ErrDumpInterrupted })
	if !errors.Is(err, netlink.ErrDumpInterrupted) || calls != dumpTries {
		t.Fatalf("always interrupted: %v after %d calls", err, calls)
	}

	calls = 0
	other := errors.New("boom")
	_, err = dump(func() ([]int, error) { calls++; return nil, other })
	if err != other || calls != 1 {
		t.Fatalf("other error: %v after %d calls", err, calls)
	}
}
