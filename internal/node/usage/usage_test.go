package usage

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/testutil"
)

var (
	errDown    = errors.New("registry unreachable")
	errAlready = errors.New("usage already reported")
)

// fakeRegistry takes reports as the registry does: all of a batch or
// none, refusing a window that starts before the end of the contract's
// last one. lostAnswer makes the next accepted batch look failed to the
// node (the answer was lost after the registry stored it).
type fakeRegistry struct {
	mu         sync.Mutex // guards every field
	down       bool
	lostAnswer bool
	got        []billing.UsageReport
	lastEnd    map[uint64]int64
}

func (f *fakeRegistry) ReportUsage(_ context.Context, rs []billing.UsageReport) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return errDown
	}
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			return err
		}
		if r.Start < f.lastEnd[r.ContractID] {
			return errAlready
		}
	}
	for _, r := range rs {
		f.lastEnd[r.ContractID] = r.End
	}
	f.got = append(f.got, rs...)
	if f.lostAnswer {
		f.lostAnswer = false
		return errDown
	}
	return nil
}

func (f *fakeRegistry) set(down, lost bool) {
	f.mu.Lock()
	f.down, f.lostAnswer = down, lost
	f.mu.Unlock()
}

type fakeSource struct{ samples []Sample }

func (s *fakeSource) Samples(context.Context) ([]Sample, error) { return s.samples, nil }

type fakeClock struct{ now int64 }

func (c *fakeClock) Now() time.Time { return time.Unix(c.now, 0) }

func newUsage(t *testing.T, file string, clock *fakeClock, src Source, reg Reporter) *Usage {
	t.Helper()
	u, err := New(Config{NodeID: 9, File: file, SampleEvery: 10 * time.Second, ReportEvery: time.Minute, Now: clock.Now,
		Final: func(err error) bool { return errors.Is(err, errAlready) || errors.Is(err, billing.ErrInvalid) }},
		src, reg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestReportLateNeverTwice: windows closed while the registry is
// unreachable wait on disk, survive a restart and are reported late; a
// window the registry stored although its answer was lost is refused as
// already reported and dropped; nothing is reported twice.
func TestReportLateNeverTwice(t *testing.T) {
	file := filepath.Join(t.TempDir(), "usage.json")
	clock := &fakeClock{now: 1000}
	src := &fakeSource{samples: []Sample{vm(1, 1, 1, 0, 0)}}
	reg := &fakeRegistry{lastEnd: map[uint64]int64{}, down: true}
	ctx := context.Background()
	u := newUsage(t, file, clock, src, reg)
	for _, at := range []int64{1000, 1030, 1060, 1090, 1120} {
		clock.now = at
		err := u.Step(ctx)
		if cut := at == 1060 || at == 1120; cut != errors.Is(err, errDown) {
			t.Fatalf("step at %d: got %v, want errDown only when reporting", at, err)
		}
	}
	if got := lines(u.Pending()); got != "1 [1000,1060) cru=1 mru=1 ips=0 net=0\n1 [1060,1120) cru=1 mru=1 ips=0 net=0" {
		t.Fatalf("pending while the registry is down:\n%s", got)
	}

	// The node restarts (down 1120 to 2000); the registry is back but the
	// answer to the first report is lost.
	clock.now = 2000
	reg.set(false, true)
	u = newUsage(t, file, clock, src, reg)
	if err := u.Report(ctx); !errors.Is(err, errDown) {
		t.Fatalf("report with a lost answer: got %v, want errDown", err)
	}
	if n := len(u.Pending()); n != 2 {
		t.Fatalf("after a lost answer: %d pending, want the 2 kept", n)
	}
	if err := u.Report(ctx); err != nil {
		t.Fatalf("reporting again: %v", err)
	}
	if n := len(u.Pending()); n != 0 {
		t.Fatalf("after the registry refused them as reported: %d pending, want 0", n)
	}
	// The node was down from 1120 to 2000: not billed.
	clock.now = 2000
	if err := u.Step(ctx); err != nil {
		t.Fatal(err)
	}
	clock.now = 2060
	if err := u.Step(ctx); err != nil {
		t.Fatal(err)
	}
	want := "1 [1000,1060) cru=1 mru=1 ips=0 net=0\n1 [1060,1120) cru=1 mru=1 ips=0 net=0\n1 [2000,2060) cru=1 mru=1 ips=0 net=0"
	reg.mu.Lock()
	got := lines(reg.got)
	reg.mu.Unlock()
	if got != want {
		t.Fatalf("the registry got\n%s\nwant\n%s", got, want)
	}
	if b, err := os.ReadFile(file); err != nil || len(b) == 0 {
		t.Fatalf("state file: %q, %v", b, err)
	}
}

// TestBadStateFile: a state file that cannot be read is an error, not a
// silent fresh start that would lose the unsent windows.
func TestBadStateFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "usage.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{NodeID: 9, File: file, SampleEvery: time.Second, ReportEvery: time.Minute}, &fakeSource{}, &fakeRegistry{}, testutil.Logger(t))
	if err == nil {
		t.Fatal("got no error for a corrupt state file")
	}
	if b, _ := os.ReadFile(file); string(b) != "{not json" {
		t.Fatalf("the corrupt file was overwritten: %q", b)
	}
	if _, err := New(Config{NodeID: 9, File: file, SampleEvery: time.Second, ReportEvery: 25 * time.Hour}, &fakeSource{}, &fakeRegistry{}, testutil.Logger(t)); err == nil {
		t.Fatal("got no error for a report period longer than a window may be")
	}
}

// TestLoopLooksWhenChanged: the loop looks at the contracts at once when
// told a capacity changed (a new window starts at that moment), reports
// each period, and ends with its context.
func TestLoopLooksWhenChanged(t *testing.T) {
	testutil.NoLeaks(t)
	clock := &fakeClock{now: 1000}
	var mu sync.Mutex
	src := &lockedSource{mu: &mu, s: []Sample{vm(1, 1, 1, 0, 0)}}
	reg := &fakeRegistry{lastEnd: map[uint64]int64{}}
	tick := make(chan time.Time)
	u, err := New(Config{NodeID: 9, File: filepath.Join(t.TempDir(), "usage.json"), SampleEvery: time.Hour, ReportEvery: time.Minute,
		Now:   func() time.Time { mu.Lock(); defer mu.Unlock(); return clock.Now() },
		After: func(time.Duration) <-chan time.Time { return tick }}, src, reg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := testutil.Go(t, "usage loop", u.Loop)
	testutil.Eventually(t, 5*time.Second, "the first look", func() (bool, error) { return len(u.meterOpen()) == 1, nil })
	mu.Lock()
	clock.now, src.s = 1030, []Sample{vm(1, 2, 1, 0, 0)}
	mu.Unlock()
	u.Changed()
	testutil.Eventually(t, 5*time.Second, "the change's window", func() (bool, error) { return len(u.Pending()) == 1, nil })
	mu.Lock()
	clock.now = 1060
	mu.Unlock()
	tick <- time.Time{}
	testutil.Eventually(t, 5*time.Second, "the period's report", func() (bool, error) {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		return len(reg.got) == 2, nil
	})
	reg.mu.Lock()
	got := lines(reg.got)
	reg.mu.Unlock()
	if want := "1 [1000,1030) cru=1 mru=1 ips=0 net=0\n1 [1030,1060) cru=2 mru=1 ips=0 net=0"; got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	stop()
}

type lockedSource struct {
	mu *sync.Mutex
	s  []Sample
}

func (l *lockedSource) Samples(context.Context) ([]Sample, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Sample(nil), l.s...), nil
}

// meterOpen returns the contracts with an open window.
func (u *Usage) meterOpen() []uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []uint64
	for c := range u.meter.state.Open {
		out = append(out, c)
	}
	return out
}
