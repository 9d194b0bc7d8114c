package update

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// EnvTrial names, in the environment of an exec'd zos, the version it is
// a trial of: only that process may confirm or fail it.
const EnvTrial = "ZOS_UPDATE_TRIAL"

// Decision is what a starting node does.
type Decision struct {
	// Exec is a verified slot's zos to exec instead of running on ("":
	// run this binary).
	Exec string
	// Trial: this process is the trial of State.Trying (the manager gates it).
	Trial bool
}

// Boot decides, at the start of `zos node`, which version runs: a trial
// exec'd by the previous version goes on (Trial); a trial that was
// interrupted from outside (kill -9, power cut: no guard saw it die) is
// tried once more, failed the second time; otherwise the current slot runs if it
// verifies, else the previous one, else the installed binary. self is
// this binary, running its version; args are the node's arguments.
func Boot(dir, self, running string, args []string, getenv func(string) string, log *slog.Logger) Decision {
	s, err := LoadState(dir)
	if err != nil {
		// A state that cannot be read names no version: run what was
		// started, and start the record again.
		log.Warn("update_state_unreadable", "err", err)
		_ = os.Rename(statePath(dir), statePath(dir)+".bad")
		s = State{}
	}
	if !inSlots(dir, self) {
		s.Installed = self
	}
	s.Args = args
	if s.Trying != "" {
		if getenv(EnvTrial) == s.Trying && running == s.Trying {
			_ = SaveState(dir, s)
			return Decision{Trial: true}
		}
		if slices.Contains(s.Interrupted, s.Trying) {
			log.Warn("update_trial_interrupted_twice", "version", s.Trying)
			s.fail(s.Trying)
		} else {
			log.Warn("update_trial_interrupted", "version", s.Trying, "retry", true)
			s.Interrupted = append(s.Interrupted, s.Trying)
			if len(s.Interrupted) > maxFailed {
				s.Interrupted = s.Interrupted[len(s.Interrupted)-maxFailed:]
			}
		}
		s.Trying = ""
	}
	if err := SaveState(dir, s); err != nil {
		log.Warn("update_state_not_saved", "err", err)
	}
	for _, v := range []string{s.Current, s.Previous} {
		if v == "" || v == running {
			return Decision{}
		}
		if _, err := verifySlot(dir, v); err != nil {
			log.Warn("update_slot_unusable", "version", v, "err", err)
			continue
		}
		return Decision{Exec: Binary(dir, v)}
	}
	return Decision{}
}

// inSlots says whether bin is a slot's binary.
func inSlots(dir, bin string) bool {
	rel, err := filepath.Rel(slotsDir(dir), bin)
	return err == nil && !strings.HasPrefix(rel, "..")
}

// binaryOf is the zos of version v ("": the installed binary).
func binaryOf(dir string, s State, v string) string {
	if v == "" {
		return s.Installed
	}
	return Binary(dir, v)
}

// Environ is env without a trial marker, plus one for trial when set.
func Environ(env []string, trial string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if !strings.HasPrefix(e, EnvTrial+"=") {
			out = append(out, e)
		}
	}
	if trial != "" {
		out = append(out, EnvTrial+"="+trial)
	}
	return out
}
