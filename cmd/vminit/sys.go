package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/pid1"
	"golang.org/x/sys/unix"
)

// switchRoot moves the pseudo mounts under root and makes root "/" (the
// initramfs is rootfs: no pivot_root, MS_MOVE then chroot).
func switchRoot(root string) error {
	// The pseudo file systems carried into the new root, with their
	// submounts (/dev/pts, /dev/shm).
	for _, m := range []string{"/dev", "/proc", "/sys", "/run", "/tmp"} {
		target := filepath.Join(root, m)
		if st, err := os.Stat(target); err != nil || !st.IsDir() {
			unix.Unmount(m, unix.MNT_DETACH)
			continue
		}
		if err := unix.Mount(m, target, "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s into the root: %w", m, err)
		}
	}
	if err := unix.Chdir(root); err != nil {
		return fmt.Errorf("entering %s: %w", root, err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving %s to /: %w", root, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into the root: %w", err)
	}
	return unix.Chdir("/")
}

func sethostname(name string) error { return unix.Sethostname([]byte(name)) }

// execInit replaces vminit with the image's own init.
func execInit(argv, env []string) error {
	if err := unix.Exec(argv[0], argv, env); err != nil {
		return fmt.Errorf("exec %v: %w", argv, err)
	}
	return nil
}

// supervise starts the entrypoint on the console, reaps every child, and
// returns the entrypoint's exit code once it ended.
func supervise(cfg *guest.Config, env []string, log *slog.Logger) (int, error) {
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
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			// Power button (ACPI) or a signal from the host: stop the
			// entrypoint; its exit powers off.
			log.Info("stopping", "signal", sig.String())
			unix.Kill(-p.Pid, unix.SIGTERM)
			continue
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
	return 0, errors.New("signal channel closed")
}

// poweroff stops what is left, syncs and powers the VM off.
func poweroff(log *slog.Logger, code int) {
	// Every orphan is our child: once wait4 says there are none, nothing
	// is left running.
	unix.Kill(-1, unix.SIGTERM)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && !noChildren() {
		time.Sleep(10 * time.Millisecond)
	}
	unix.Kill(-1, unix.SIGKILL)
	pid1.Reap()
	log.Info("poweroff", "code", code)
	if err := pid1.Halt(false); err != nil {
		log.Error("poweroff_failed", "err", err)
	}
	select {} // PID 1 must not exit
}

// noChildren reaps exited children and reports whether none is left.
func noChildren() bool {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.ECHILD) {
			return true
		}
		if pid <= 0 {
			return false
		}
	}
}
