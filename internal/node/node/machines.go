package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/node/flistd"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/node/vm"
	"github.com/zos-go/zos/internal/sys/qemu"
)

// machines is the VM side of the node: flists, the VM manager and the
// zmachine workload manager.
type machines struct {
	vms     *vm.Manager
	flists  *flistd.Module
	manager *primitives.ZMachineManager
}

// vminitPath is the guest init: --vminit, else vminit next to the zos
// binary.
func (c *Config) vminitPath() string {
	if c.Vminit != "" {
		return c.Vminit
	}
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Join(filepath.Dir(exe), "vminit")
}

// startMachines prepares what zmachine workloads need: the guest kernel
// (cfg.VMKernel: Debian's package or an unpacked tree, kernel.Find), the
// vminit initramfs, the accelerator, the flist module, and takes back the VMs a previous run
// left running. It returns nil without a guest kernel: the node then
// does not offer zmachine.
func (n *Node) startMachines(ctx context.Context, cache string, log *slog.Logger) (*machines, error) {
	cfg := n.cfg
	if cfg.VMKernel == "" {
		log.Warn("zmachine_disabled", "reason", "no guest kernel (--vm-kernel DIR)")
		return nil, nil
	}
	log = log.With("component", "vm")
	k, err := kernel.Find(ctx, cfg.VMKernel, log)
	if err != nil {
		return nil, fmt.Errorf("guest kernel: %w", err)
	}
	vminit := cfg.vminitPath()
	if _, err := os.Stat(vminit); err != nil {
		return nil, fmt.Errorf("guest init: %w (build it with make build, or pass --vminit)", err)
	}
	root := filepath.Join(cache, "vm")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	initrd := filepath.Join(cache, "vminit.img")
	if _, err := vm.WriteInitramfs(vm.InitramfsConfig{Vminit: vminit, ModulesDir: k.ModulesDir()}, initrd); err != nil {
		return nil, err
	}
	accel, err := qemu.ResolveAccel(ctx, cfg.Accel, vm.Canary(qemu.DefaultBinary, k.Vmlinux, initrd, log), 30*time.Second, log)
	if err != nil {
		return nil, err
	}
	vms, err := vm.New(vm.Config{Root: filepath.Join(root, "machines"), Kernel: k.Vmlinux, Initrd: initrd, Accel: accel, NetNS: cfg.NetNS}, vm.HostSystem("", ""), log)
	if err != nil {
		return nil, err
	}
	adopted, err := vms.Adopt(ctx)
	if err != nil {
		return nil, err
	}
	if len(adopted) > 0 {
		log.Info("vms_adopted", "count", len(adopted))
	}
	fl, err := flistd.New(flistd.Config{Root: filepath.Join(cache, "flist"), CacheDir: filepath.Join(cache, "flist-cache"), CacheSize: 2 << 30,
		Egress: n.egress}, log.With("component", "flist"))
	if err != nil {
		return nil, err
	}
	return &machines{vms: vms, flists: fl, manager: &primitives.ZMachineManager{
		Storage: n.storage, Flists: fl, VMs: vms, Networks: n.network,
		RootfsDir: filepath.Join(root, "rootfs"), Prefix: cfg.Prefix,
		DNS: []string{"8.8.8.8", "1.1.1.1"}, Log: log, Planetary: n.planetaryVMs(),
	}}, nil
}

// monitorVMs restarts crashed VMs every 10 s and rotates their console
// logs; one that crashes too often is decommissioned: its workload ends
// deleted with the reason.
func (n *Node) monitorVMs(ctx context.Context, vms *vm.Manager) error {
	vms.Monitor(ctx, 10*time.Second, func(ev vm.Event) {
		n.metrics.vmEvent(ev.Err)
		if ev.Err == nil {
			n.log.Warn("vm_restarted", "vm", ev.Name)
			return
		}
		n.log.Error("vm_failed", "vm", ev.Name, "err", ev.Err)
		if !errors.Is(ev.Err, vm.ErrDecommissioned) {
			return
		}
		if err := n.engine.Decommission(gridtypes.WorkloadID(ev.Name), ev.Err.Error()); err != nil {
			n.log.Error("decommission_failed", "vm", ev.Name, "err", err)
		}
	})
	return nil
}

// ConsoleLog implements api.ConsoleLogs and primitives.ConsoleLogs: the
// console log of a zmachine.
func (n *Node) ConsoleLog(id gridtypes.WorkloadID) (string, error) {
	if n.vms == nil {
		return "", errors.New("this node runs no VMs")
	}
	return n.vms.vms.ConsolePath(primitives.VMName(id))
}
