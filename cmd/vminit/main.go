// Command vminit is PID 1 of container-mode VMs. The node boots Debian's
// kernel with an initramfs holding only vminit and the modules it needs;
// vminit mounts /proc, /sys and /dev, loads the modules listed in
// /etc/vminit/modules in order, mounts the root share (root=TAG,
// rootfstype=virtiofs, falling back to 9p), reads the VM configuration
// (vminit.config= on the kernel command line, else /.vminit/config.json
// in the root), mounts the extra shares and the disks (found by their
// virtio serial, btrfs unless the config says otherwise; the file system
// modules load only then), configures the network, hostname
// and DNS, writes SSH_KEY to /root/.ssh/authorized_keys when /root exists,
// switches to the root and runs the entrypoint with its output on the
// console. It reaps orphans and powers the VM off when the entrypoint
// ends; the power button (QEMU's system_powerdown, seen as KEY_POWER on
// /dev/input/event*) stops the entrypoint with SIGTERM first. When the
// config marks the entrypoint as an init, it is exec'ed as PID 1 instead.
//
// Synopsis: the kernel runs it as /init; it takes no arguments. Outside
// PID 1 it prints this synopsis and exits.
package main

import (
	"fmt"
	"log/slog"
	"os"
)

func main() {
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit is the init of a zos VM's initramfs; it runs only as PID 1")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "vminit")
	code, err := run(log)
	if err != nil {
		log.Error("vminit_failed", "err", err)
		code = 1
	}
	poweroff(log, code)
}
