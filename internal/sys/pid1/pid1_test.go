package pid1

import (
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

func TestUnmountAllNotMounted(t *testing.T) {
	testutil.RequireRoot(t)
	// A directory that is not a mount point is skipped (EINVAL).
	if err := UnmountAll([]string{t.TempDir()}); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
}

func TestClockAlreadySet(t *testing.T) {
	now, set, err := ClockFromRTC(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil || set || now.Year() < 2000 {
		t.Fatalf("got %v %v %v, want the clock left alone", now, set, err)
	}
}

func TestReapNoChildren(t *testing.T) {
	if got := Reap(); len(got) != 0 {
		t.Fatalf("reaped %v with no children", got)
	}
}
