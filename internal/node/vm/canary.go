package vm

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/zos-go/zos/internal/sys/qemu"
)

// Canary returns the canary boot qemu.ResolveAccel runs before trusting
// KVM: the guest kernel and vminit initramfs boot with no root share, so
// vminit starts, reports the missing root and powers off. The boot passes
// when QEMU exits by itself after vminit spoke on the console; a hang
// (nested "PVM" KVM) ends with ctx, QEMU killed.
func Canary(qemuBin, kernel, initrd string, log *slog.Logger) qemu.Canary {
	return func(ctx context.Context, accel string) error {
		dir, err := os.MkdirTemp("", "zos-canary-")
		if err != nil {
			return fmt.Errorf("canary boot: %w", err)
		}
		defer os.RemoveAll(dir)
		vm := qemu.VM{Name: "canary", Accel: accel, CPUs: 1, MemoryMiB: 128, Kernel: kernel, Initrd: initrd,
			Cmdline: "quiet panic=-1", Console: filepath.Join(dir, "console.log"), QMP: filepath.Join(dir, "qmp.sock")}
		p, err := qemu.Start(qemuBin, vm, log)
		if err != nil {
			return fmt.Errorf("canary boot: %w", err)
		}
		defer p.Kill()
		if err := p.Wait(ctx); err != nil && ctx.Err() != nil {
			return fmt.Errorf("canary boot with %s: no power-off: %w", accel, err)
		}
		b, _ := os.ReadFile(vm.Console)
		if !strings.Contains(string(b), "component=vminit") {
			return fmt.Errorf("canary boot with %s: vminit never ran (qemu: %s)", accel, strings.TrimSpace(p.Output()))
		}
		return nil
	}
}
