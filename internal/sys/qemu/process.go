package qemu

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/sys/netns"
	"golang.org/x/sys/unix"
)

// DefaultBinary is QEMU's x86-64 system emulator.
const DefaultBinary = "qemu-system-x86_64"

// Process is a started QEMU (or virtiofsd). Its pid is kept from the start (a pidfile
// disappears when QEMU quits). It runs in its own session so that it
// survives the node process.
type Process struct {
	Pid  int
	Argv []string
	done chan struct{}
	mu   sync.Mutex // guards err and out
	err  error
	out  bytes.Buffer
}

// Start validates vm and starts QEMU. QEMU's own stdout/stderr (not the
// guest console, which goes to vm.Console) are kept for errors.
func Start(bin string, vm VM, log *slog.Logger) (*Process, error) {
	if err := vm.Validate(); err != nil {
		return nil, fmt.Errorf("starting qemu: invalid vm: %w", err)
	}
	if bin == "" {
		bin = DefaultBinary
	}
	p, err := startProcess(bin, Argv(vm), vm.NetNS)
	if err != nil {
		return nil, fmt.Errorf("starting qemu: %w", err)
	}
	log.Info("qemu_started", "pid", p.Pid, "name", vm.Name)
	return p, nil
}

// startProcess starts bin in its own session (inside network namespace
// netns unless ""), keeping its pid and a bounded copy of its output; a
// goroutine owned by the Process waits for it and closes Done.
func startProcess(bin string, argv []string, ns string) (*Process, error) {
	p := &Process{Argv: argv, done: make(chan struct{})}
	cmd := exec.Command(bin, argv...)
	w := &lockedWriter{p: p}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := netns.Start(ns, cmd); err != nil {
		return nil, fmt.Errorf("%s %s: %w", bin, strings.Join(argv, " "), err)
	}
	p.Pid = cmd.Process.Pid
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		if err != nil {
			err = fmt.Errorf("%s %s: %w: %s", bin, strings.Join(argv, " "), err, strings.TrimSpace(p.out.String()))
		}
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

type lockedWriter struct{ p *Process }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.out.Len() < 64<<10 {
		w.p.out.Write(b)
	}
	return len(b), nil
}

// Done is closed when QEMU exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is QEMU's exit error (with argv and output) once Done is closed.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Output is what QEMU itself printed (bounded).
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	unix.Kill(p.Pid, unix.SIGKILL)
	<-p.done
}

// Wait waits for QEMU to exit or ctx to end.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Alive reports whether pid is a running (not zombie) process whose
// command line starts with a QEMU binary: used to re-adopt a VM after a
// node restart without trusting a recycled pid.
func Alive(pid int) bool { return running(pid, "qemu-system") }

// VirtiofsdAlive reports whether pid is a running virtiofsd.
func VirtiofsdAlive(pid int) bool { return running(pid, "virtiofsd") }

// running reports whether pid runs a program whose path contains name (a
// zombie has no command line; a reused pid runs something else).
func running(pid int, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return false
	}
	exe := string(bytes.SplitN(b, []byte{0}, 2)[0])
	return strings.Contains(exe, name)
}

// KillPid sends SIGKILL to pid (a process of a previous node run, with no
// Process to wait on).
func KillPid(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// Canary boots a VM with accel and reports whether it reached the guest
// (the caller decides how: a marker on the console).
type Canary func(ctx context.Context, accel string) error

// ResolveAccel turns "auto", "kvm" or "tcg" into the accelerator to use.
// auto picks kvm only when /dev/kvm opens and the canary boot succeeds
// within timeout; otherwise tcg (on nested "PVM" hosts KVM opens but stock
// kernels hang).
func ResolveAccel(ctx context.Context, mode string, canary Canary, timeout time.Duration, log *slog.Logger) (string, error) {
	switch mode {
	case AccelKVM, AccelTCG:
		return mode, nil
	case "auto", "":
	default:
		return "", fmt.Errorf("accel %q: want auto, kvm or tcg", mode)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		log.Info("accel_tcg", "reason", err.Error())
		return AccelTCG, nil
	}
	f.Close()
	if canary == nil {
		log.Info("accel_tcg", "reason", "no canary boot to trust kvm with")
		return AccelTCG, nil
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := canary(cctx, AccelKVM); err != nil {
		log.Warn("accel_tcg", "reason", "kvm canary boot failed", "err", err)
		return AccelTCG, nil
	}
	log.Info("accel_kvm")
	return AccelKVM, nil
}
