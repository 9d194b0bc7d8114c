package update

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// GuardConfig watches one trial from outside it.
type GuardConfig struct {
	Dir     string
	PID     int           // the node's pid (kept by exec)
	Version string        // the trial
	Bound   time.Duration // after this the trial is given up
	Stdout  io.Writer     // where a restarted node writes
	Stderr  io.Writer
}

// Guard is `zos update-guard`, started by the version that switches (a
// known-good binary) just before it execs a trial: a trial that dies, or
// is neither confirmed nor failed by itself within the bound, is marked
// failed and the current version started again with the node's arguments
// (a new pid: only on this path). It returns once the trial is decided.
func Guard(ctx context.Context, cfg GuardConfig, log *slog.Logger) error {
	deadline := time.Now().Add(cfg.Bound)
	var goneSince time.Time // when the trial was first seen gone
	for {
		s, err := LoadState(cfg.Dir)
		if err != nil {
			return err
		}
		if s.Trying != cfg.Version {
			return nil // decided by the trial
		}
		// A process that execs from another thread than its first shows
		// that thread as a zombie for a moment: only a trial gone for
		// deathWindow is dead.
		alive := processAlive(cfg.PID)
		switch {
		case alive:
			goneSince = time.Time{}
		case goneSince.IsZero():
			goneSince = time.Now()
		}
		dead := !alive && time.Since(goneSince) >= deathWindow
		if dead || time.Now().After(deadline) {
			if alive {
				_ = syscall.Kill(cfg.PID, syscall.SIGKILL)
				for processAlive(cfg.PID) && ctx.Err() == nil {
					time.Sleep(50 * time.Millisecond)
				}
			}
			s.fail(cfg.Version)
			s.Trying = ""
			if err := SaveState(cfg.Dir, s); err != nil {
				return err
			}
			bin := binaryOf(cfg.Dir, s, s.Current)
			log.Error("update_trial_died", "version", cfg.Version, "restarting", s.Current, "binary", bin)
			cmd := exec.Command(bin, append([]string{"node"}, s.Args...)...)
			cmd.Env = Environ(os.Environ(), "")
			cmd.Stdout, cmd.Stderr = cfg.Stdout, cfg.Stderr
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("restarting %s: %w", bin, err)
			}
			return cmd.Process.Release()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// deathWindow is how long a trial must look gone before the guard gives
// it up (an exec shows a zombie thread group leader for milliseconds).
const deathWindow = time.Second

// processAlive says whether pid runs (a zombie does not).
func processAlive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && syscall.Kill(pid, 0) == nil
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
