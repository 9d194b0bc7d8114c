package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/qemu"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned for a VM the manager does not know.
var ErrNotFound = errors.New("vm not found")

// ErrExists is returned when running a VM whose name is taken.
var ErrExists = errors.New("vm exists")

// Config of a Manager.
type Config struct {
	// Root holds one directory per VM: its spec, state (pids), console
	// log and sockets. It must survive a node restart (cache volume).
	Root string
	// Kernel and Initrd are the guest vmlinux and vminit initramfs.
	Kernel, Initrd string
	// Accel is qemu.AccelKVM or qemu.AccelTCG (resolved already).
	Accel string
	// QEMU and Virtiofsd are the binaries ("" = defaults).
	QEMU, Virtiofsd string
	// StopTimeout is how long Delete waits for a graceful power-off
	// before killing QEMU (default 10 s).
	StopTimeout time.Duration
}

// Validate checks the config and fills defaults.
func (c *Config) Validate() error {
	for what, p := range map[string]string{"root": c.Root, "kernel": c.Kernel, "initrd": c.Initrd} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("vm manager: %s %q is not an absolute path", what, p)
		}
	}
	if c.Accel != qemu.AccelKVM && c.Accel != qemu.AccelTCG {
		return fmt.Errorf("vm manager: accel %q: want kvm or tcg", c.Accel)
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 10 * time.Second
	}
	return nil
}

// Share is a host directory shared into the guest over virtiofs.
type Share struct {
	Dir        string `json:"dir"`
	Mountpoint string `json:"mountpoint"`
}

// Spec is a VM to run: a container-mode guest whose root is RootDir.
type Spec struct {
	Name      string       `json:"name"`
	CPUs      int          `json:"cpus"`
	MemoryMiB int          `json:"memory_mib"`
	RootDir   string       `json:"root_dir"`
	Shares    []Share      `json:"shares,omitempty"`
	Disks     []string     `json:"disks,omitempty"`
	NICs      []qemu.NIC   `json:"nics,omitempty"`
	Guest     guest.Config `json:"guest"`
}

// Validate checks the spec.
func (s *Spec) Validate() error {
	if !regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`).MatchString(s.Name) {
		return fmt.Errorf("vm name %q: invalid", s.Name)
	}
	if !filepath.IsAbs(s.RootDir) {
		return fmt.Errorf("vm %s: root dir %q is not an absolute path", s.Name, s.RootDir)
	}
	for _, sh := range s.Shares {
		if !filepath.IsAbs(sh.Dir) {
			return fmt.Errorf("vm %s: share %q is not an absolute path", s.Name, sh.Dir)
		}
	}
	return nil
}

// state is what survives a node restart next to the spec: the pids,
// kept from the start.
type state struct {
	QEMU      int   `json:"qemu_pid"`
	Virtiofsd []int `json:"virtiofsd_pids"`
}

// machine is a VM the manager runs or adopted.
type machine struct {
	spec  Spec
	dir   string
	state state
	// proc is set for a VM started by this process (nil when adopted).
	proc *qemu.Process
	fsds []*qemu.Process
	// crashes are the recent crash times (for the decommission policy).
	crashes []time.Time
}

// Manager runs VMs under QEMU and keeps them across node restarts.
type Manager struct {
	cfg Config
	log *slog.Logger
	mu  sync.Mutex // guards vms
	vms map[string]*machine
}

// New returns a manager; call Adopt to take back VMs of a previous run.
func New(cfg Config, log *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("creating vm root %s: %w", cfg.Root, err)
	}
	return &Manager{cfg: cfg, log: log.With("component", "vm"), vms: map[string]*machine{}}, nil
}

func (m *Manager) vmDir(name string) string { return filepath.Join(m.cfg.Root, name) }

// qemuVM is the qemu.VM of a spec (pure).
func (m *Manager) qemuVM(s Spec, dir string) (qemu.VM, error) {
	g := s.Guest
	g.Mounts = nil
	fs := []qemu.FS{{ID: "fs0", Tag: "vroot", Socket: filepath.Join(dir, "fs0.sock")}}
	for i, sh := range s.Shares {
		id := fmt.Sprintf("fs%d", i+1)
		fs = append(fs, qemu.FS{ID: id, Tag: id, Socket: filepath.Join(dir, id+".sock")})
		g.Mounts = append(g.Mounts, guest.Mount{Tag: id, Mountpoint: sh.Mountpoint})
	}
	if err := g.Validate(); err != nil {
		return qemu.VM{}, fmt.Errorf("vm %s: %w", s.Name, err)
	}
	enc, err := g.Encode()
	if err != nil {
		return qemu.VM{}, err
	}
	if len(enc) > guest.MaxCmdlineConfig {
		return qemu.VM{}, fmt.Errorf("vm %s: guest config too large for the command line (%d bytes)", s.Name, len(enc))
	}
	v := qemu.VM{
		Name: s.Name, Accel: m.cfg.Accel, CPUs: s.CPUs, MemoryMiB: s.MemoryMiB,
		Kernel: m.cfg.Kernel, Initrd: m.cfg.Initrd,
		Cmdline: "quiet panic=-1 root=vroot rootfstype=virtiofs " + guest.ParamConfig + "=" + enc,
		FS:      fs, NICs: s.NICs,
		Console: filepath.Join(dir, "console.log"), QMP: filepath.Join(dir, "qmp.sock"),
	}
	for i, d := range s.Disks {
		v.Disks = append(v.Disks, qemu.Disk{ID: fmt.Sprintf("d%d", i), Path: d})
	}
	return v, v.Validate()
}

// Run starts a VM: one virtiofsd per share, then QEMU. The spec and the
// pids are written to the VM's directory before Run returns.
func (m *Manager) Run(ctx context.Context, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.vms[s.Name]; ok {
		return fmt.Errorf("running vm %s: %w", s.Name, ErrExists)
	}
	dir := m.vmDir(s.Name)
	vm, err := m.qemuVM(s, dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	mc := &machine{spec: s, dir: dir}
	fail := func(err error) error {
		m.stopProcesses(mc)
		os.RemoveAll(dir)
		return fmt.Errorf("running vm %s: %w", s.Name, err)
	}
	if err := writeJSON(filepath.Join(dir, "spec.json"), s); err != nil {
		return fail(err)
	}
	dirs := []string{s.RootDir}
	for _, sh := range s.Shares {
		dirs = append(dirs, sh.Dir)
	}
	for i, d := range dirs {
		p, err := qemu.StartVirtiofsd(ctx, m.cfg.Virtiofsd, vm.FS[i].Socket, d, m.log)
		if err != nil {
			return fail(err)
		}
		mc.fsds = append(mc.fsds, p)
		mc.state.Virtiofsd = append(mc.state.Virtiofsd, p.Pid)
	}
	os.Remove(vm.Console)
	p, err := qemu.Start(m.cfg.QEMU, vm, m.log)
	if err != nil {
		return fail(err)
	}
	mc.proc, mc.state.QEMU = p, p.Pid
	if err := writeJSON(filepath.Join(dir, "state.json"), mc.state); err != nil {
		return fail(err)
	}
	// QEMU is up once its monitor answers.
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	q, err := qemu.DialQMPRetry(qctx, vm.QMP)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("%w (qemu: %s)", err, p.Output()))
	}
	q.Close()
	m.vms[s.Name] = mc
	return nil
}

// Info is what Inspect reports.
type Info struct {
	Name    string
	Pid     int
	Status  string // QEMU run state, or "stopped" when QEMU is gone
	Console string // path of the console log
}

// Inspect reports a VM's state, asking QEMU over QMP.
func (m *Manager) Inspect(ctx context.Context, name string) (Info, error) {
	m.mu.Lock()
	mc, ok := m.vms[name]
	m.mu.Unlock()
	if !ok {
		return Info{}, fmt.Errorf("inspecting vm %s: %w", name, ErrNotFound)
	}
	info := Info{Name: name, Pid: mc.state.QEMU, Console: filepath.Join(mc.dir, "console.log"), Status: "stopped"}
	if !qemu.Alive(mc.state.QEMU) {
		return info, nil
	}
	q, err := qemu.DialQMP(ctx, filepath.Join(mc.dir, "qmp.sock"))
	if err != nil {
		return info, fmt.Errorf("inspecting vm %s: %w", name, err)
	}
	defer q.Close()
	st, err := q.QueryStatus(ctx)
	if err != nil {
		return info, fmt.Errorf("inspecting vm %s: %w", name, err)
	}
	info.Status = st.Status
	return info, nil
}

// Pause stops the VM's vCPUs (QMP stop); Resume continues them.
func (m *Manager) Pause(ctx context.Context, name string) error {
	return m.qmp(ctx, name, "pausing", (*qemu.QMP).Stop)
}

// Resume continues a paused VM (QMP cont).
func (m *Manager) Resume(ctx context.Context, name string) error {
	return m.qmp(ctx, name, "resuming", (*qemu.QMP).Cont)
}

func (m *Manager) qmp(ctx context.Context, name, what string, do func(*qemu.QMP, context.Context) error) error {
	m.mu.Lock()
	mc, ok := m.vms[name]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s vm %s: %w", what, name, ErrNotFound)
	}
	q, err := qemu.DialQMP(ctx, filepath.Join(mc.dir, "qmp.sock"))
	if err != nil {
		return fmt.Errorf("%s vm %s: %w", what, name, err)
	}
	defer q.Close()
	if err := do(q, ctx); err != nil {
		return fmt.Errorf("%s vm %s: %w", what, name, err)
	}
	return nil
}

// List returns the names of the VMs, sorted.
func (m *Manager) List() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, 0, len(m.vms))
	for n := range m.vms {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Delete stops a VM: ACPI power-down, QEMU killed after StopTimeout, its
// virtiofsds stopped and its directory removed.
func (m *Manager) Delete(ctx context.Context, name string) error {
	m.mu.Lock()
	mc, ok := m.vms[name]
	if ok {
		delete(m.vms, name)
	}
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("deleting vm %s: %w", name, ErrNotFound)
	}
	if qemu.Alive(mc.state.QEMU) {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if q, err := qemu.DialQMP(qctx, filepath.Join(mc.dir, "qmp.sock")); err == nil {
			if err := q.SystemPowerdown(qctx); err != nil {
				m.log.Warn("powerdown", "vm", name, "err", err)
			}
			q.Close()
		}
		cancel()
		if !waitGone(ctx, mc.state.QEMU, m.cfg.StopTimeout) {
			m.log.Info("vm_kill", "vm", name, "pid", mc.state.QEMU)
		}
	}
	m.stopProcesses(mc)
	if err := os.RemoveAll(mc.dir); err != nil {
		return fmt.Errorf("deleting vm %s: %w", name, err)
	}
	return nil
}

// stopProcesses kills QEMU and the virtiofsds of mc and waits for them.
func (m *Manager) stopProcesses(mc *machine) {
	kill := func(pid int, p *qemu.Process, isQEMU bool) {
		if p != nil {
			p.Kill()
			return
		}
		if pid > 0 && (!isQEMU || qemu.Alive(pid)) && sameVMProcess(pid, mc.dir) {
			unix.Kill(pid, unix.SIGKILL)
			waitGone(context.Background(), pid, 5*time.Second)
		}
	}
	kill(mc.state.QEMU, mc.proc, true)
	for i, pid := range mc.state.Virtiofsd {
		var p *qemu.Process
		if i < len(mc.fsds) {
			p = mc.fsds[i]
		}
		kill(pid, p, false)
	}
}

// sameVMProcess reports whether pid's command line mentions the VM's
// directory (its sockets live there): a recycled pid is never killed.
func sameVMProcess(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(b) > 0 && bytes.Contains(b, []byte(dir+"/"))
}

// waitGone waits until pid is no longer a live process (a zombie counts
// as gone) or timeout.
func waitGone(ctx context.Context, pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !processLive(pid) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	return !processLive(pid)
}

func processLive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(b) > 0
}

// Adopt takes back the VMs of a previous node run: a VM whose QEMU is
// still alive (same pid, answering on its QMP socket) is kept without a
// reboot; the leftovers of a dead one are cleaned up. It returns the
// names adopted.
func (m *Manager) Adopt(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(m.cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("reading vm root %s: %w", m.cfg.Root, err)
	}
	var adopted []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(m.cfg.Root, e.Name())
		mc := &machine{dir: dir}
		errSpec := readJSON(filepath.Join(dir, "spec.json"), &mc.spec)
		errState := readJSON(filepath.Join(dir, "state.json"), &mc.state)
		alive := errSpec == nil && errState == nil && qemu.Alive(mc.state.QEMU) && sameVMProcess(mc.state.QEMU, dir)
		if alive {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			q, err := qemu.DialQMP(qctx, filepath.Join(dir, "qmp.sock"))
			cancel()
			if err != nil {
				m.log.Warn("adopt_qmp", "vm", e.Name(), "err", err)
				alive = false
			} else {
				q.Close()
			}
		}
		if !alive {
			m.log.Info("vm_cleanup", "vm", e.Name())
			m.stopProcesses(mc)
			os.RemoveAll(dir)
			continue
		}
		m.mu.Lock()
		m.vms[mc.spec.Name] = mc
		m.mu.Unlock()
		adopted = append(adopted, mc.spec.Name)
		m.log.Info("vm_adopted", "vm", mc.spec.Name, "pid", mc.state.QEMU)
	}
	return adopted, nil
}

func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", p, err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	return nil
}

func readJSON(p string, v any) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding %s: %w", p, err)
	}
	return nil
}
