package vm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/blockdev"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

// fakeHost is a hypervisor that starts nothing: processes are rows of a
// table, QMP answers from it, and every action the manager takes is
// recorded as a readable line (paths under the manager's root read
// ROOT). Queries (liveness, blkid) are not recorded.
type fakeHost struct {
	root string

	mu    sync.Mutex // guards everything below
	lines []string
	next  int
	procs map[int]*fakeProc
	sigs  map[string]blockdev.Signature // disk path -> what blkid finds
	open  int                           // QMP connections not closed
	// failVirtiofsd (a shared dir) and failQEMU make those starts fail;
	// silentQMP makes QEMU never answer; ignorePowerdown makes QEMU
	// ignore system_powerdown.
	failVirtiofsd   string
	failQEMU        bool
	silentQMP       bool
	ignorePowerdown bool
}

type fakeProc struct {
	host   *fakeHost
	pid    int
	kind   string // "qemu", "virtiofsd", or "other" (a recycled pid)
	dir    string // the VM directory its command line names
	qmp    string // QEMU's QMP socket
	status string // QEMU's run state
	alive  bool
}

func newFakeHost(root string) *fakeHost {
	return &fakeHost{root: root, next: 100, procs: map[int]*fakeProc{}, sigs: map[string]blockdev.Signature{}}
}

func (f *fakeHost) system() System { return System{Launcher: f, QMP: f, Pids: f, Disks: f} }

// logf records a line; callers hold mu.
func (f *fakeHost) logf(format string, args ...any) {
	f.lines = append(f.lines, strings.ReplaceAll(fmt.Sprintf(format, args...), f.root, "ROOT"))
}

// take returns the lines recorded since the last call.
func (f *fakeHost) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.lines
	f.lines = nil
	return l
}

func (f *fakeHost) add(kind, dir string) *fakeProc {
	f.next++
	p := &fakeProc{host: f, pid: f.next, kind: kind, dir: dir, alive: true}
	f.procs[p.pid] = p
	return p
}

// exit ends pid without the manager knowing (a crash).
func (f *fakeHost) exit(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs[pid].alive = false
}

// recycle makes pid a live process of another program, as the kernel
// may after a node restart.
func (f *fakeHost) recycle(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs[pid] = &fakeProc{host: f, pid: pid, kind: "other", alive: true}
}

func (f *fakeHost) setStatus(pid int, status string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.procs[pid].status = status
}

// Launcher

func (f *fakeHost) StartVirtiofsd(ctx context.Context, socket, dir string, log *slog.Logger) (Process, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if dir == f.failVirtiofsd {
		f.logf("virtiofsd start %s: refused", dir)
		return nil, fmt.Errorf("starting virtiofsd: shared dir %s is not a directory", dir)
	}
	p := f.add("virtiofsd", filepath.Dir(socket))
	f.logf("virtiofsd[%d] start %s on %s", p.pid, dir, socket)
	return p, nil
}

func (f *fakeHost) StartQEMU(vm qemu.VM, log *slog.Logger) (Process, error) {
	if err := vm.Validate(); err != nil {
		return nil, fmt.Errorf("starting qemu: invalid vm: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failQEMU {
		f.logf("qemu start %s: refused", vm.Name)
		return nil, errors.New("starting qemu: exec: no such file")
	}
	p := f.add("qemu", filepath.Dir(vm.QMP))
	p.qmp, p.status = vm.QMP, "running"
	f.logf("qemu[%d] start %s uid=%d chroot=%s", p.pid, vm.Name, vm.RunAs.UID, vm.Chroot)
	return p, nil
}

// Process

func (p *fakeProc) PID() int { return p.pid }

func (p *fakeProc) Output() string { return "fake output" }

func (p *fakeProc) Kill() {
	p.host.mu.Lock()
	defer p.host.mu.Unlock()
	if p.alive {
		p.alive = false
		p.host.logf("%s[%d] kill", p.kind, p.pid)
	}
}

// Monitors

func (f *fakeHost) DialQMP(ctx context.Context, socket string) (Monitor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.procs {
		if p.alive && p.kind == "qemu" && p.qmp == socket && !f.silentQMP {
			f.open++
			f.logf("qmp %s connect", socket)
			return &fakeQMP{host: f, proc: p}, nil
		}
	}
	f.logf("qmp %s connect: refused", socket)
	return nil, fmt.Errorf("dialing qmp %s: connection refused", socket)
}

func (f *fakeHost) WaitQMP(ctx context.Context, socket string) (Monitor, error) {
	for {
		f.mu.Lock()
		silent := f.silentQMP
		f.mu.Unlock()
		if !silent {
			return f.DialQMP(ctx, socket)
		}
		select {
		case <-ctx.Done():
			f.mu.Lock()
			f.logf("qmp %s wait: %v", socket, ctx.Err())
			f.mu.Unlock()
			return nil, fmt.Errorf("dialing qmp %s: %w", socket, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

type fakeQMP struct {
	host *fakeHost
	proc *fakeProc
}

func (q *fakeQMP) do(cmd string) error {
	q.host.mu.Lock()
	defer q.host.mu.Unlock()
	q.host.logf("qmp %s %s", q.proc.qmp, cmd)
	if !q.proc.alive {
		return errors.New("qmp: connection reset")
	}
	switch cmd {
	case "stop":
		q.proc.status = "paused"
	case "cont":
		q.proc.status = "running"
	case "system_powerdown":
		if !q.host.ignorePowerdown {
			q.proc.alive = false
		}
	}
	return nil
}

func (q *fakeQMP) QueryStatus(ctx context.Context) (qemu.Status, error) {
	if err := q.do("query-status"); err != nil {
		return qemu.Status{}, err
	}
	q.host.mu.Lock()
	defer q.host.mu.Unlock()
	return qemu.Status{Status: q.proc.status, Running: q.proc.status == "running"}, nil
}

func (q *fakeQMP) Stop(ctx context.Context) error            { return q.do("stop") }
func (q *fakeQMP) Cont(ctx context.Context) error            { return q.do("cont") }
func (q *fakeQMP) SystemPowerdown(ctx context.Context) error { return q.do("system_powerdown") }

func (q *fakeQMP) Close() error {
	q.host.mu.Lock()
	defer q.host.mu.Unlock()
	q.host.open--
	return nil
}

// Pids

func (f *fakeHost) proc(pid int) *fakeProc {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.procs[pid]; p != nil && p.alive {
		return p
	}
	return nil
}

func (f *fakeHost) Live(pid int) bool { return f.proc(pid) != nil }

func (f *fakeHost) QEMU(pid int) bool {
	p := f.proc(pid)
	return p != nil && p.kind == "qemu"
}

func (f *fakeHost) Virtiofsd(pid int) bool {
	p := f.proc(pid)
	return p != nil && p.kind == "virtiofsd"
}

func (f *fakeHost) OfVM(pid int, dir string) bool {
	p := f.proc(pid)
	return p != nil && p.dir == dir
}

func (f *fakeHost) OfDir(dir string) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []int
	for pid, p := range f.procs {
		if p.alive && p.dir == dir {
			out = append(out, pid)
		}
	}
	slices.Sort(out)
	return out
}

func (f *fakeHost) Kill(pid int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.procs[pid]
	if p == nil || !p.alive {
		return fmt.Errorf("kill %d: no such process", pid)
	}
	p.alive = false
	f.logf("%s[%d] kill-pid", p.kind, pid)
	return nil
}

// Disks

func (f *fakeHost) Probe(path string) (blockdev.Signature, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sigs[path], nil
}

func (f *fakeHost) Mkfs(path, label string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.sigs[path].Empty() {
		return fmt.Errorf("mkfs %s: device has a file system", path)
	}
	f.sigs[path] = blockdev.Signature{Type: "btrfs", Label: label}
	f.logf("mkfs %s label=%s", path, label)
	return nil
}

// newFakeManager is a manager over a fakeHost in a temporary root; the
// test fails when a QMP connection is left open.
func newFakeManager(t *testing.T) (*Manager, *fakeHost) {
	t.Helper()
	root := t.TempDir()
	f := newFakeHost(root)
	m := newManagerOver(t, root, f)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.open != 0 {
			t.Errorf("%d QMP connections left open", f.open)
		}
	})
	return m, f
}

// newManagerOver is a second manager over the same root and host: a node
// restart.
func newManagerOver(t *testing.T, root string, f *fakeHost) *Manager {
	t.Helper()
	m, err := New(Config{Root: root, Kernel: "/k/vmlinux", Initrd: "/k/vminit.cpio", Accel: qemu.AccelTCG,
		StopTimeout: 50 * time.Millisecond}, f.system(), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantLines compares whole line sequences.
func wantLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s: got lines\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
