package update

import (
	"time"
)

// A node whose parent restarts it (the booted image's init, PID 1,
// internal/node/boot) is guarded by that parent instead of `zos
// update-guard`: the parent sees every exit of the node process, so a
// trial is never retried. It calls TrialOverdue while the node runs (and
// stops a trial that overran its bound) and GiveUpTrial after every exit,
// before starting the node again: the next start (Boot) then runs the
// current slot, the version the trial was switched from.

// GiveUpTrial records the version on trial in dir failed, never to be
// tried again, and returns it ("": no trial was running, nothing changed).
func GiveUpTrial(dir string) (string, error) {
	s, err := LoadState(dir)
	if err != nil {
		return "", err
	}
	v := s.Trying
	if v == "" {
		return "", nil
	}
	s.fail(v)
	s.Trying = ""
	if err := SaveState(dir, s); err != nil {
		return "", err
	}
	return v, nil
}

// TrialOverdue returns the version on trial in dir when it was switched
// to more than bound before now and has neither confirmed nor failed
// itself ("": none, or still within its bound).
func TrialOverdue(dir string, bound time.Duration, now time.Time) string {
	s, err := LoadState(dir)
	if err != nil || s.Trying == "" || s.SwitchedAt == 0 {
		return ""
	}
	if now.Sub(time.UnixMilli(s.SwitchedAt)) <= bound {
		return ""
	}
	return s.Trying
}

// GuardBound is how long a guard gives a trial whose health gate is gate:
// the gate, plus the time to stop the old version and start the new one.
func GuardBound(gate time.Duration) time.Duration { return gate + 30*time.Second }
