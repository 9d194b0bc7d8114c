package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/input"
	"github.com/zos-go/zos/internal/sys/pid1"
	"github.com/zos-go/zos/internal/sys/proc"
	"golang.org/x/sys/unix"
)

// watchPowerButton opens the input devices (before the switch to the
// root, which may have no /dev) and reports power button presses on the
// returned channel until ctx ends. QEMU's system_powerdown reaches a
// microvm guest as an ACPI GED event; the button driver turns it into
// KEY_POWER on /dev/input/eventN (evdev).
func watchPowerButton(ctx context.Context, log *slog.Logger) <-chan struct{} {
	pressed := make(chan struct{}, 1)
	n := input.WatchPowerButton(ctx, "/dev/input", func() {
		select {
		case pressed <- struct{}{}:
		default:
		}
	})
	log.Debug("power_button", "devices", n)
	return pressed
}

// supervise starts the entrypoint on the console, reaps every child, and
// returns the entrypoint's exit code once it ended. A power button press
// or SIGTERM/SIGINT/SIGPWR stops the entrypoint's process group with
// SIGTERM; its exit powers off.
func supervise(cfg *guest.Config, env []string, power <-chan struct{}, log *slog.Logger) (int, error) {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGINT, syscall.SIGPWR)
	defer signal.Stop(sigs)
	dir := cfg.Dir
	if dir == "" {
		dir = "/"
	}
	p, err := os.StartProcess(cfg.Entrypoint[0], cfg.Entrypoint, &os.ProcAttr{
		Dir: dir, Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys: &syscall.SysProcAttr{Setsid: true},
	})
	if err != nil {
		return 0, fmt.Errorf("starting entrypoint %v: %w", cfg.Entrypoint, err)
	}
	log.Info("entrypoint_started", "pid", p.Pid, "path", cfg.Entrypoint[0])
	for {
		select {
		case <-power:
			log.Info("stopping", "reason", "power_button")
			proc.SignalGroup(p.Pid, unix.SIGTERM)
			continue
		case sig := <-sigs:
			if sig != syscall.SIGCHLD {
				log.Info("stopping", "signal", sig.String())
				proc.SignalGroup(p.Pid, unix.SIGTERM)
				continue
			}
		}
		for _, e := range pid1.Reap() {
			if e.Pid != p.Pid {
				continue
			}
			code := e.Status.ExitStatus()
			if e.Status.Signaled() {
				code = 128 + int(e.Status.Signal())
			}
			log.Info("entrypoint_exited", "code", code)
			return code, nil
		}
	}
}

// poweroff stops what is left, syncs and powers the VM off.
func poweroff(log *slog.Logger, code int) {
	// Every orphan is our child: once wait4 says there are none, nothing
	// is left running.
	proc.SignalAll(unix.SIGTERM)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && !proc.NoChildren() {
		time.Sleep(10 * time.Millisecond)
	}
	proc.SignalAll(unix.SIGKILL)
	pid1.Reap()
	log.Info("poweroff", "code", code)
	if err := pid1.Halt(false); err != nil {
		log.Error("poweroff_failed", "err", err)
	}
	select {} // PID 1 must not exit
}
