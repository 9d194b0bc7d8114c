package vm

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/btrfs"
	"github.com/zos-go/zos/internal/sys/qemu"
)

// Process is a QEMU or virtiofsd this manager started.
type Process interface {
	PID() int
	// Output is what the program itself printed (bounded).
	Output() string
	// Kill sends SIGKILL and waits for the exit (nothing when gone).
	Kill()
}

// Launcher starts the processes of a VM, each in its own session so that
// it outlives the node process.
type Launcher interface {
	// StartVirtiofsd serves dir on socket and returns once the socket
	// exists.
	StartVirtiofsd(ctx context.Context, socket, dir string, log *slog.Logger) (Process, error)
	// StartQEMU starts QEMU for vm (in vm.NetNS).
	StartQEMU(vm qemu.VM, log *slog.Logger) (Process, error)
}

// Monitor is one QMP connection to a VM's QEMU.
type Monitor interface {
	QueryStatus(ctx context.Context) (qemu.Status, error)
	Stop(ctx context.Context) error
	Cont(ctx context.Context) error
	SystemPowerdown(ctx context.Context) error
	Close() error
}

// Monitors opens QMP sockets.
type Monitors interface {
	DialQMP(ctx context.Context, socket string) (Monitor, error)
	// WaitQMP dials until QEMU answers on socket or ctx ends (QEMU
	// starting).
	WaitQMP(ctx context.Context, socket string) (Monitor, error)
}

// Pids looks at processes by pid: those of a previous node run have no
// Process, and a pid may have been recycled since.
type Pids interface {
	// Live reports whether pid is a running process (a zombie is not).
	Live(pid int) bool
	// QEMU and Virtiofsd report whether pid runs that program.
	QEMU(pid int) bool
	Virtiofsd(pid int) bool
	// OfVM reports whether pid's command line names a file in the VM's
	// directory dir (its sockets live there).
	OfVM(pid int, dir string) bool
	// OfDir lists the processes whose command line names a file in dir:
	// those of a VM whose start a crash interrupted before their pids
	// were recorded.
	OfDir(dir string) []int
	Kill(pid int) error
}

// Disks probes and formats the disks vminit mounts.
type Disks interface {
	Probe(path string) (blockdev.Signature, error)
	Mkfs(path, label string) error
}

// System is everything the manager needs from the host: the hypervisor
// processes, their monitors and the disks.
type System struct {
	Launcher Launcher
	QMP      Monitors
	Pids     Pids
	Disks    Disks
}

func (s System) validate() error {
	if s.Launcher == nil || s.QMP == nil || s.Pids == nil || s.Disks == nil {
		return fmt.Errorf("vm manager: incomplete system dependencies")
	}
	return nil
}

// HostSystem is the System of a live machine: QEMU and virtiofsd binaries
// ("" = qemu.DefaultBinary, qemu.DefaultVirtiofsd), QMP over unix
// sockets, /proc, blkid and mkfs.btrfs.
func HostSystem(qemuBin, virtiofsdBin string) System {
	return System{
		Launcher: hostLauncher{qemu: qemuBin, virtiofsd: virtiofsdBin},
		QMP:      hostMonitors{},
		Pids:     hostPids{},
		Disks:    hostDisks{},
	}
}

var (
	_ Process  = hostProcess{}
	_ Launcher = hostLauncher{}
	_ Monitor  = (*qemu.QMP)(nil)
	_ Monitors = hostMonitors{}
	_ Pids     = hostPids{}
	_ Disks    = hostDisks{}
)

type hostProcess struct{ *qemu.Process }

func (p hostProcess) PID() int { return p.Pid }

type hostLauncher struct{ qemu, virtiofsd string }

func (h hostLauncher) StartVirtiofsd(ctx context.Context, socket, dir string, log *slog.Logger) (Process, error) {
	p, err := qemu.StartVirtiofsd(ctx, h.virtiofsd, socket, dir, log)
	if err != nil {
		return nil, err
	}
	return hostProcess{p}, nil
}

func (h hostLauncher) StartQEMU(vm qemu.VM, log *slog.Logger) (Process, error) {
	p, err := qemu.Start(h.qemu, vm, log)
	if err != nil {
		return nil, err
	}
	return hostProcess{p}, nil
}

type hostMonitors struct{}

func (hostMonitors) DialQMP(ctx context.Context, socket string) (Monitor, error) {
	q, err := qemu.DialQMP(ctx, socket)
	if err != nil {
		return nil, err
	}
	return q, nil
}

func (hostMonitors) WaitQMP(ctx context.Context, socket string) (Monitor, error) {
	q, err := qemu.DialQMPRetry(ctx, socket)
	if err != nil {
		return nil, err
	}
	return q, nil
}

type hostPids struct{}

func (hostPids) Live(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(b) > 0
}

func (hostPids) QEMU(pid int) bool      { return qemu.Alive(pid) }
func (hostPids) Virtiofsd(pid int) bool { return qemu.VirtiofsdAlive(pid) }

func (hostPids) OfVM(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(b) > 0 && bytes.Contains(b, []byte(dir+"/"))
}

func (h hostPids) OfDir(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != os.Getpid() && h.OfVM(pid, dir) {
			out = append(out, pid)
		}
	}
	return out
}

func (hostPids) Kill(pid int) error { return qemu.KillPid(pid) }

// hostDisks joins blkid and mkfs.btrfs.
type hostDisks struct {
	blockdev.Blkid
	btrfs.Btrfs
}
