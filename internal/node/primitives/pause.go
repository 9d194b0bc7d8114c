package primitives

import (
	"context"
	"fmt"

	"github.com/zos-go/zos/internal/node/provision"
)

// Pausing a contract in its grace period (provision.Pauser): a VM's vCPUs
// stop (QMP stop, the same QEMU process keeps its memory), a zdb namespace
// refuses writes and serves reads. Resume undoes it. Both are idempotent.

var (
	_ provision.Pauser = (*ZMachineManager)(nil)
	_ provision.Pauser = (*ZDBManager)(nil)
)

// Pause stops the VM without removing it.
func (m *ZMachineManager) Pause(ctx context.Context, wl *provision.Workload) error {
	if err := m.VMs.Pause(ctx, VMName(wl.ID)); err != nil {
		return fmt.Errorf("pausing vm %s: %w", wl.ID, err)
	}
	return nil
}

// Resume lets the paused VM run again.
func (m *ZMachineManager) Resume(ctx context.Context, wl *provision.Workload) error {
	if err := m.VMs.Resume(ctx, VMName(wl.ID)); err != nil {
		return fmt.Errorf("resuming vm %s: %w", wl.ID, err)
	}
	return nil
}

// Pause makes the namespace refuse writes; reads go on.
func (m *ZDBManager) Pause(_ context.Context, wl *provision.Workload) error {
	return m.setPaused(wl, true)
}

// Resume makes the namespace take writes again.
func (m *ZDBManager) Resume(_ context.Context, wl *provision.Workload) error {
	return m.setPaused(wl, false)
}

func (m *ZDBManager) setPaused(wl *provision.Workload, paused bool) error {
	name := string(wl.ID)
	s, ok := m.find(name)
	if !ok {
		return fmt.Errorf("namespace %s not found", name)
	}
	return s.NamespacePause(name, paused)
}
