// Package update is the node's live self-update (hosted mode first): it
// watches its release channel through TUF (internal/release), installs a
// newer release into a slot under DATA/update/slots, switches by exec'ing
// the new zos (same pid: VMs, flist daemons and pools are adopted as after
// a restart), and holds the new version to a health gate. A version that
// does not pass it is rolled back and never tried again; the node reports
// it to the grid (registry node record: update_failed).
//
// On disk (DATA/update):
//
//	state.json            State, written whole (atomicfile)
//	slots/VERSION/        a complete, verified release: its artifacts and
//	                      manifest.json (their SHA-256, from the signed targets);
//	                      made under slots/.tmp-VERSION and renamed in whole
//	tuf/                  the trusted TUF metadata (rollback, freeze protection)
//
// A kill -9 at any step leaves either the old state or the new one, and a
// slot is used only if its files match its manifest: the node always
// comes back on a complete, verified version.
//
// Who guards a trial: a hosted node (`zos node`) starts `zos update-guard`
// (Guard) before it execs one; the booted image's init, the node's
// parent, guards it itself (GiveUpTrial, TrialOverdue). Either way a trial
// that dies or does not confirm within GuardBound is failed, never
// retried, and the node runs the version it was switched from. In the
// booted image DATA/update is in the RAM root: after a reboot the node
// runs the image's own zos and updates from there.
package update

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/zos-go/zos/internal/atomicfile"
)

// State is what survives restarts and exec.
type State struct {
	// Current is the slot the node runs ("": the installed binary).
	Current string `json:"current,omitempty"`
	// Previous is the slot to go back to ("": the installed binary).
	Previous string `json:"previous,omitempty"`
	// Trying is a version switched to and not yet through the gate.
	Trying string `json:"trying,omitempty"`
	// Failed versions are never tried again (newest last).
	Failed []string `json:"failed,omitempty"`
	// Interrupted versions had a trial cut short from outside (kill -9,
	// power cut) once: tried again once more, failed the second time.
	Interrupted []string `json:"interrupted,omitempty"`
	// Args are the node's arguments, to start a slot again with.
	Args []string `json:"args,omitempty"`
	// Installed is the zos binary the node was started from (the version
	// before any slot).
	Installed string `json:"installed,omitempty"`
	// SwitchedAt is when the trial of Trying was exec'd (unix ms).
	SwitchedAt int64 `json:"switched_at,omitempty"`
}

// maxFailed bounds the failed list kept (and reported).
const maxFailed = 16

func (s *State) fail(v string) {
	if v == "" || slices.Contains(s.Failed, v) {
		return
	}
	s.Failed = append(s.Failed, v)
	if len(s.Failed) > maxFailed {
		s.Failed = s.Failed[len(s.Failed)-maxFailed:]
	}
}

func statePath(dir string) string { return filepath.Join(dir, "state.json") }

// LoadState reads DIR/state.json (the zero State when there is none).
func LoadState(dir string) (State, error) {
	var s State
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading update state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decoding update state: %w", err)
	}
	return s, nil
}

// SaveState writes DIR/state.json whole.
func SaveState(dir string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating update directory: %w", err)
	}
	if err := atomicfile.WriteFile(statePath(dir), b, 0o600); err != nil {
		return fmt.Errorf("writing update state: %w", err)
	}
	return nil
}
