package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/wait"
)

// Crash policy (zos §7): a crashed VM is restarted; more than MaxCrashes
// within CrashWindow decommissions it.
const (
	MaxCrashes  = 4
	CrashWindow = 2 * time.Minute
)

// ErrDecommissioned wraps the reason a VM was given up on.
var ErrDecommissioned = errors.New("vm decommissioned")

// Event is something the monitor did to a VM.
type Event struct {
	Name string
	// Restarted is set when the VM was started again after a crash.
	Restarted bool
	// Err is set when the VM was decommissioned (wraps
	// ErrDecommissioned) or could not be restarted.
	Err error
}

// Check restarts every VM whose QEMU died since the last check, and
// decommissions (stops tracking, cleans up) one that crashed more than
// MaxCrashes times within CrashWindow. Owners call it periodically (the
// node every 10 s); it returns what it did.
func (m *Manager) Check(ctx context.Context, now time.Time) []Event {
	m.mu.Lock()
	var dead, alive []*machine
	for _, mc := range m.vms {
		if m.sys.Pids.QEMU(mc.state.QEMU) && sharesServed(m.sys.Pids, mc) {
			alive = append(alive, mc)
		} else {
			dead = append(dead, mc)
		}
	}
	m.mu.Unlock()
	// After a KVM internal error QEMU stays alive, paused: a crash too.
	for _, mc := range alive {
		if m.internalError(ctx, mc) {
			m.log.Warn("vm_internal_error", "vm", mc.spec.Name)
			dead = append(dead, mc)
		}
	}
	var events []Event
	for _, mc := range dead {
		name := mc.spec.Name
		crashes := []time.Time{now}
		for _, c := range mc.crashes {
			if now.Sub(c) < CrashWindow {
				crashes = append(crashes, c)
			}
		}
		m.log.Warn("vm_crashed", "vm", name, "crashes", len(crashes))
		m.mu.Lock()
		if m.vms[name] != mc { // deleted meanwhile
			m.mu.Unlock()
			continue
		}
		delete(m.vms, name)
		m.mu.Unlock()
		m.stopProcesses(mc)
		if len(crashes) > MaxCrashes {
			err := fmt.Errorf("vm %s: %w: crashed %d times within %s", name, ErrDecommissioned, len(crashes), CrashWindow)
			os.RemoveAll(mc.dir)
			events = append(events, Event{Name: name, Err: err})
			continue
		}
		if err := m.Run(ctx, mc.spec); err != nil {
			events = append(events, Event{Name: name, Err: fmt.Errorf("restarting vm %s: %w", name, err)})
			continue
		}
		m.mu.Lock()
		if nm := m.vms[name]; nm != nil {
			nm.crashes = crashes
		}
		m.mu.Unlock()
		events = append(events, Event{Name: name, Restarted: true})
	}
	return events
}

// Monitor calls Check every interval until ctx ends, passing the events
// to report, and rotates the console logs every Config.LogCheck (the
// owner runs it in its errgroup; it returns once both loops ended).
func (m *Manager) Monitor(ctx context.Context, interval time.Duration, report func(Event)) {
	rotated := make(chan struct{})
	go func() {
		defer close(rotated)
		m.rotateLoop(ctx)
	}()
	defer func() { <-rotated }()
	wait.Every(ctx, interval, func() {
		for _, e := range m.Check(ctx, time.Now()) {
			if report != nil {
				report(e)
			}
		}
	})
}

// sharesServed reports whether every virtiofsd of the VM runs: without
// its daemon a share (the root in container mode) hangs in the guest,
// and vhost-user-fs cannot reconnect, so the VM counts as crashed.
func sharesServed(pids Pids, mc *machine) bool {
	for _, pid := range mc.state.Virtiofsd {
		if !pids.Virtiofsd(pid) {
			return false
		}
	}
	return true
}

// internalError asks QEMU whether the VM stopped on an internal error.
func (m *Manager) internalError(ctx context.Context, mc *machine) bool {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	q, err := m.sys.QMP.DialQMP(qctx, filepath.Join(mc.dir, "qmp.sock"))
	if err != nil {
		return false
	}
	defer q.Close()
	st, err := q.QueryStatus(qctx)
	return err == nil && st.Status == qemu.StatusInternalError
}
