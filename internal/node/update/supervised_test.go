package update

import (
	"os"
	"slices"
	"testing"
	"time"
)

// TestGiveUpTrial: after the node process exits, a trial named in the
// state is recorded failed and cleared (Boot then runs the current slot,
// and check never offers it again); without a trial nothing changes.
func TestGiveUpTrial(t *testing.T) {
	tests := []struct {
		name       string
		state      State
		want       string
		wantFailed []string
	}{
		{"trial died", State{Current: "v2", Previous: "v1", Trying: "v3"}, "v3", []string{"v3"}},
		{"trial died, earlier failures kept", State{Current: "v2", Trying: "v4", Failed: []string{"v3"}}, "v4", []string{"v3", "v4"}},
		{"no trial: a plain crash", State{Current: "v2", Previous: "v1"}, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveState(dir, tt.state); err != nil {
				t.Fatal(err)
			}
			got, err := GiveUpTrial(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			s, err := LoadState(dir)
			if err != nil {
				t.Fatal(err)
			}
			if s.Trying != "" || !slices.Equal(s.Failed, tt.wantFailed) || s.Current != tt.state.Current || s.Previous != tt.state.Previous {
				t.Fatalf("state: got %+v, want no trial, failed %v, current %q previous %q", s, tt.wantFailed, tt.state.Current, tt.state.Previous)
			}
		})
	}
}

// TestGiveUpTrialUnreadableState: a state that cannot be read is an
// error, and the file is left as it was.
func TestGiveUpTrialUnreadableState(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(statePath(dir), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if v, err := GiveUpTrial(dir); err == nil {
		t.Fatalf("got %q and no error, want an error", v)
	}
	if b, _ := os.ReadFile(statePath(dir)); string(b) != "{not json" {
		t.Fatalf("the state file changed to %q", b)
	}
}

// TestTrialOverdue: a trial switched to longer than the bound ago is
// overdue; one within it, none, or a confirmed one is not.
func TestTrialOverdue(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	bound := time.Minute
	tests := []struct {
		name  string
		state State
		want  string
	}{
		{"over the bound", State{Trying: "v2", SwitchedAt: now.Add(-61 * time.Second).UnixMilli()}, "v2"},
		{"within the bound", State{Trying: "v2", SwitchedAt: now.Add(-59 * time.Second).UnixMilli()}, ""},
		{"confirmed", State{Current: "v2", SwitchedAt: now.Add(-time.Hour).UnixMilli()}, ""},
		{"no switch time", State{Trying: "v2"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := SaveState(dir, tt.state); err != nil {
				t.Fatal(err)
			}
			if got := TrialOverdue(dir, bound, now); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
