package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/wait"
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
	// StopTimeout is how long Delete waits for a graceful power-off
	// before killing QEMU (default 10 s).
	StopTimeout time.Duration
	// NetNS is the network namespace QEMU runs in ("" = the node's):
	// the taps of Spec.NICs are looked up there.
	NetNS string
	// LogCheck is how often the console logs are checked (default 10 s);
	// one larger than LogMax (default 8 MiB) is cut to its last LogKeep
	// bytes (default 4 MiB), in place.
	LogCheck        time.Duration
	LogMax, LogKeep int64
	// UIDBase is the first of the users QEMU runs as, one per VM (uid and
	// gid UIDBase, UIDBase+1, ...; default DefaultUIDBase): a user no
	// file of the host belongs to.
	UIDBase uint32
}

// DefaultUIDBase is the default Config.UIDBase: above the ranges
// distributions and container runtimes hand out (subordinate ids start
// at 100000 and grow by 65536).
const DefaultUIDBase uint32 = 1 << 30

// maxVMUsers bounds the users of one manager (UIDBase + 0 ... + maxVMUsers-1).
const maxVMUsers = 1 << 20

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
	if c.LogCheck <= 0 {
		c.LogCheck = 10 * time.Second
	}
	if c.LogMax <= 0 {
		c.LogMax = 8 << 20
	}
	if c.LogKeep <= 0 {
		c.LogKeep = 4 << 20
	}
	if c.LogKeep >= c.LogMax {
		return fmt.Errorf("vm manager: log keep %d must be less than log max %d", c.LogKeep, c.LogMax)
	}
	if c.UIDBase == 0 {
		c.UIDBase = DefaultUIDBase
	}
	if c.UIDBase < 1000 || c.UIDBase > ^uint32(0)-maxVMUsers {
		return fmt.Errorf("vm manager: uid base %d: want 1000 to %d", c.UIDBase, ^uint32(0)-maxVMUsers)
	}
	return nil
}

// Share is a host directory shared into the guest over virtiofs.
type Share struct {
	Dir        string `json:"dir"`
	Mountpoint string `json:"mountpoint"`
}

// Boot modes.
const (
	// BootContainer (the default, also ""): Debian's kernel and the vminit
	// initramfs of the Config, the root shared from RootDir over
	// virtiofs; vminit mounts shares and disks and runs Guest.Entrypoint.
	BootContainer = "container"
	// BootKernel: the root is still RootDir over virtiofs (tag vroot),
	// but the kernel (a bzImage, e.g. the flist's /boot/vmlinuz) and the
	// optional initrd come from Boot; Guest.Entrypoint[0] is the kernel's
	// init= and its arguments follow "--". The guest's own init mounts
	// shares (tags fs1, fs2, ...) and disks.
	BootKernel = "kernel"
	// BootDisk: a full VM booting its first disk with its own boot loader
	// (SeaBIOS, -M pc, virtio-pci devices). RootDir and Guest are unused.
	BootDisk = "disk"
)

// Boot selects how a VM boots.
type Boot struct {
	Mode string `json:"mode,omitempty"`
	// Kernel and Initrd (absolute) are the kernel-mode kernel and initrd.
	Kernel string `json:"kernel,omitempty"`
	Initrd string `json:"initrd,omitempty"`
	// Cmdline is added to the kernel-mode command line.
	Cmdline string `json:"cmdline,omitempty"`
}

// Disk is a raw disk file attached as virtio-blk, in order. In container
// mode a disk with a Mountpoint is formatted btrfs before its first boot
// when it is blank (FormatBlank) and vminit mounts it there; in the other
// modes the guest mounts its disks itself.
type Disk struct {
	Path       string `json:"path"`
	Mountpoint string `json:"mountpoint,omitempty"`
}

// Spec is a VM to run. Container mode (the default) runs Guest.Entrypoint
// in RootDir; see Boot for the others.
type Spec struct {
	Name      string       `json:"name"`
	CPUs      int          `json:"cpus"`
	MemoryMiB int          `json:"memory_mib"`
	Boot      Boot         `json:"boot,omitempty"`
	RootDir   string       `json:"root_dir,omitempty"`
	Shares    []Share      `json:"shares,omitempty"`
	Disks     []Disk       `json:"disks,omitempty"`
	NICs      []qemu.NIC   `json:"nics,omitempty"`
	Guest     guest.Config `json:"guest"`
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// mode is the spec's boot mode, "" meaning BootContainer.
func (s *Spec) mode() string {
	if s.Boot.Mode == "" {
		return BootContainer
	}
	return s.Boot.Mode
}

// Validate checks the spec.
func (s *Spec) Validate() error {
	if !nameRE.MatchString(s.Name) {
		return fmt.Errorf("vm name %q: invalid", s.Name)
	}
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("vm %s: "+format, append([]any{s.Name}, a...)...))
	}
	switch s.mode() {
	case BootContainer, BootKernel:
		if !filepath.IsAbs(s.RootDir) {
			bad("root dir %q is not an absolute path", s.RootDir)
		}
	case BootDisk:
		if len(s.Disks) == 0 {
			bad("boot mode disk: no disk to boot")
		}
	default:
		bad("boot mode %q: want %s, %s or %s", s.Boot.Mode, BootContainer, BootKernel, BootDisk)
	}
	if s.mode() == BootKernel {
		if !filepath.IsAbs(s.Boot.Kernel) {
			bad("boot kernel %q is not an absolute path", s.Boot.Kernel)
		}
		if s.Boot.Initrd != "" && !filepath.IsAbs(s.Boot.Initrd) {
			bad("boot initrd %q is not an absolute path", s.Boot.Initrd)
		}
		// The guest writes its root and shares: a kernel or initrd there
		// could be swapped for a link to a host file before a restart.
		// Boot files are copies in a directory of the node
		// (CopyBootFiles).
		for _, f := range []string{s.Boot.Kernel, s.Boot.Initrd} {
			for _, d := range shareDirs(*s) {
				if f != "" && within(f, d) {
					bad("boot file %s is inside %s, which the guest writes: copy it out (CopyBootFiles)", f, d)
				}
			}
		}
	} else if s.Boot.Kernel != "" || s.Boot.Initrd != "" || s.Boot.Cmdline != "" {
		bad("boot kernel, initrd and command line are for boot mode kernel only")
	}
	for _, sh := range s.Shares {
		if !filepath.IsAbs(sh.Dir) {
			bad("share %q is not an absolute path", sh.Dir)
		}
	}
	for _, d := range s.Disks {
		if !filepath.IsAbs(d.Path) {
			bad("disk %q is not an absolute path", d.Path)
		}
	}
	return errors.Join(errs...)
}

// within reports whether p is dir or below it (lexically).
func within(p, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// state is what survives a node restart next to the spec: the pids,
// kept from the start.
type state struct {
	QEMU      int   `json:"qemu_pid"`
	Virtiofsd []int `json:"virtiofsd_pids"`
	// UID is the user QEMU runs as (and its group).
	UID uint32 `json:"uid,omitempty"`
}

// machine is a VM the manager runs or adopted.
type machine struct {
	spec  Spec
	dir   string
	state state
	// proc is set for a VM started by this process (nil when adopted).
	proc Process
	fsds []Process
	// crashes are the recent crash times (for the decommission policy).
	crashes []time.Time
}

// Manager runs VMs under QEMU and keeps them across node restarts.
type Manager struct {
	cfg Config
	log *slog.Logger
	sys System
	mu  sync.Mutex // guards vms and starting
	vms map[string]*machine
	// starting are the VMs Run is starting, with the user each will run
	// as.
	starting map[string]uint32
}

// New returns a manager over sys (HostSystem on a node); call Adopt to
// take back VMs of a previous run.
func New(cfg Config, sys System, log *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := sys.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("creating vm root %s: %w", cfg.Root, err)
	}
	return &Manager{cfg: cfg, log: log.With("component", "vm"), sys: sys, vms: map[string]*machine{}, starting: map[string]uint32{}}, nil
}

func (m *Manager) vmDir(name string) string { return filepath.Join(m.cfg.Root, name) }

// freeUID is the lowest user of UIDBase + i no VM runs as or is being
// started with. Callers hold mu.
func (m *Manager) freeUID() (uint32, error) {
	used := map[uint32]bool{}
	for _, mc := range m.vms {
		used[mc.state.UID] = true
	}
	for _, uid := range m.starting {
		used[uid] = true
	}
	for i := uint32(0); i < maxVMUsers; i++ {
		if !used[m.cfg.UIDBase+i] {
			return m.cfg.UIDBase + i, nil
		}
	}
	return 0, errors.New("no free user to run QEMU as")
}

// chrootDir is the empty directory QEMU chroots into, in the VM's
// directory.
func chrootDir(dir string) string { return filepath.Join(dir, "chroot") }

// qemuVM is the qemu.VM of a spec (pure): fstypes are the file systems
// found on the disks (by index, "" for none), which vminit is told; QEMU
// switches to uid (and the group of the same number) in an empty chroot
// once its devices are open.
func (m *Manager) qemuVM(s Spec, dir string, fstypes []string, uid uint32) (qemu.VM, error) {
	v := qemu.VM{
		Name: s.Name, Accel: m.cfg.Accel, CPUs: s.CPUs, MemoryMiB: s.MemoryMiB,
		NICs: s.NICs, NetNS: m.cfg.NetNS,
		Console: filepath.Join(dir, "console.log"), QMP: filepath.Join(dir, "qmp.sock"),
		RunAs: qemu.User{UID: uid, GID: uid}, Chroot: chrootDir(dir),
	}
	for i, d := range s.Disks {
		v.Disks = append(v.Disks, qemu.Disk{ID: fmt.Sprintf("d%d", i), Path: d.Path})
	}
	if s.mode() != BootDisk {
		v.FS = append(v.FS, qemu.FS{ID: "fs0", Tag: "vroot", Socket: filepath.Join(dir, "fs0.sock")})
	}
	for i := range s.Shares {
		id := fmt.Sprintf("fs%d", i+1)
		v.FS = append(v.FS, qemu.FS{ID: id, Tag: id, Socket: filepath.Join(dir, id+".sock")})
	}
	switch s.mode() {
	case BootDisk:
		v.Machine = qemu.MachinePC
	case BootKernel:
		if len(s.Guest.Entrypoint) == 0 || !filepath.IsAbs(s.Guest.Entrypoint[0]) {
			return qemu.VM{}, fmt.Errorf("vm %s: boot mode kernel: the entrypoint (init=) must be an absolute path", s.Name)
		}
		cmdline := "panic=-1 root=vroot rootfstype=virtiofs rw init=" + s.Guest.Entrypoint[0]
		if s.Boot.Cmdline != "" {
			cmdline += " " + s.Boot.Cmdline
		}
		if args := s.Guest.Entrypoint[1:]; len(args) > 0 {
			for _, a := range args {
				if a == "" || strings.ContainsAny(a, " \t\n\"") {
					return qemu.VM{}, fmt.Errorf("vm %s: boot mode kernel: entrypoint argument %q cannot go on a kernel command line", s.Name, a)
				}
			}
			cmdline += " -- " + strings.Join(args, " ")
		}
		v.Kernel, v.Initrd, v.Cmdline = s.Boot.Kernel, s.Boot.Initrd, cmdline
	default:
		g := s.Guest
		g.Mounts, g.Disks = nil, nil
		for i := range s.Shares {
			g.Mounts = append(g.Mounts, guest.Mount{Tag: fmt.Sprintf("fs%d", i+1), Mountpoint: s.Shares[i].Mountpoint})
		}
		for i, d := range s.Disks {
			if d.Mountpoint == "" {
				continue
			}
			fst := ""
			if i < len(fstypes) {
				fst = fstypes[i]
			}
			g.Disks = append(g.Disks, guest.Disk{Serial: v.Disks[i].ID, Mountpoint: d.Mountpoint, FSType: fst})
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
		v.Kernel, v.Initrd = m.cfg.Kernel, m.cfg.Initrd
		v.Cmdline = "quiet panic=-1 root=vroot rootfstype=virtiofs " + guest.ParamConfig + "=" + enc
	}
	return v, v.Validate()
}

// shareDirs are the directories served by virtiofsd, in the order of the
// qemu.VM's FS.
func shareDirs(s Spec) []string {
	var dirs []string
	if s.mode() != BootDisk {
		dirs = append(dirs, s.RootDir)
	}
	for _, sh := range s.Shares {
		dirs = append(dirs, sh.Dir)
	}
	return dirs
}

// prepareDisks formats the blank disks vminit mounts (container mode)
// and returns the file system of every disk ("" when none or not probed).
func prepareDisks(disks Disks, s Spec) ([]string, error) {
	fstypes := make([]string, len(s.Disks))
	if s.mode() != BootContainer {
		return fstypes, nil
	}
	for i, d := range s.Disks {
		if d.Mountpoint == "" {
			continue
		}
		if _, err := formatBlank(disks, d.Path); err != nil {
			return nil, err
		}
		sig, err := disks.Probe(d.Path)
		if err != nil {
			return nil, fmt.Errorf("probing disk %s: %w", d.Path, err)
		}
		fstypes[i] = sig.Type
	}
	return fstypes, nil
}

// Run starts a VM: one virtiofsd per share, then QEMU. The spec and the
// pids are written to the VM's directory before Run returns.
func (m *Manager) Run(ctx context.Context, s Spec) error {
	if err := s.Validate(); err != nil {
		return err
	}
	// The name is taken for the whole start, but the lock is not held
	// while processes start: a VM whose QEMU never answers must not stall
	// the others (Inspect, Check, Delete).
	m.mu.Lock()
	_, running := m.vms[s.Name]
	_, starting := m.starting[s.Name]
	if running || starting {
		m.mu.Unlock()
		return fmt.Errorf("running vm %s: %w", s.Name, ErrExists)
	}
	uid, err := m.freeUID()
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("running vm %s: %w", s.Name, err)
	}
	m.starting[s.Name] = uid
	m.mu.Unlock()
	var mc *machine
	defer func() {
		m.mu.Lock()
		delete(m.starting, s.Name)
		if mc != nil {
			m.vms[s.Name] = mc
		}
		m.mu.Unlock()
	}()
	dir := m.vmDir(s.Name)
	fstypes, err := prepareDisks(m.sys.Disks, s)
	if err != nil {
		return fmt.Errorf("running vm %s: %w", s.Name, err)
	}
	vm, err := m.qemuVM(s, dir, fstypes, uid)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	started := &machine{spec: s, dir: dir, state: state{UID: uid}}
	fail := func(err error) error {
		m.stopProcesses(started)
		os.RemoveAll(dir)
		return fmt.Errorf("running vm %s: %w", s.Name, err)
	}
	if err := writeJSON(filepath.Join(dir, "spec.json"), s); err != nil {
		return fail(err)
	}
	if err := emptyDir(chrootDir(dir)); err != nil {
		return fail(err)
	}
	for i, d := range shareDirs(s) {
		p, err := m.sys.Launcher.StartVirtiofsd(ctx, vm.FS[i].Socket, d, m.log)
		if err != nil {
			return fail(err)
		}
		started.fsds = append(started.fsds, p)
		started.state.Virtiofsd = append(started.state.Virtiofsd, p.PID())
		// Recorded at once: a node killed before QEMU runs leaves
		// virtiofsds that the next start's Adopt must find and stop (a
		// survivor holds the share's pid file, and a new one cannot start).
		if err := writeJSON(filepath.Join(dir, "state.json"), started.state); err != nil {
			return fail(err)
		}
	}
	os.Remove(vm.Console)
	p, err := m.sys.Launcher.StartQEMU(vm, m.log)
	if err != nil {
		return fail(err)
	}
	started.proc, started.state.QEMU = p, p.PID()
	if err := writeJSON(filepath.Join(dir, "state.json"), started.state); err != nil {
		return fail(err)
	}
	// QEMU is up once its monitor answers.
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	q, err := m.sys.QMP.WaitQMP(qctx, vm.QMP)
	cancel()
	if err != nil {
		return fail(fmt.Errorf("%w (qemu: %s)", err, p.Output()))
	}
	q.Close()
	mc = started
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
	mc, err := m.machine(name, "inspecting")
	if err != nil {
		return Info{}, err
	}
	info := Info{Name: name, Pid: mc.state.QEMU, Console: filepath.Join(mc.dir, "console.log"), Status: "stopped"}
	if !m.sys.Pids.QEMU(mc.state.QEMU) {
		return info, nil
	}
	err = m.dialQMP(ctx, mc, "inspecting", func(q Monitor, ctx context.Context) error {
		st, err := q.QueryStatus(ctx)
		if err == nil {
			info.Status = st.Status
		}
		return err
	})
	return info, err
}

// Pause stops the VM's vCPUs (QMP stop); Resume continues them.
func (m *Manager) Pause(ctx context.Context, name string) error {
	return m.qmp(ctx, name, "pausing", Monitor.Stop)
}

// Resume continues a paused VM (QMP cont).
func (m *Manager) Resume(ctx context.Context, name string) error {
	return m.qmp(ctx, name, "resuming", Monitor.Cont)
}

// qmp runs do on a QMP connection to VM name; what (a verb) names the
// operation in the error.
func (m *Manager) qmp(ctx context.Context, name, what string, do func(Monitor, context.Context) error) error {
	mc, err := m.machine(name, what)
	if err != nil {
		return err
	}
	return m.dialQMP(ctx, mc, what, do)
}

// dialQMP runs do on a QMP connection to mc.
func (m *Manager) dialQMP(ctx context.Context, mc *machine, what string, do func(Monitor, context.Context) error) error {
	q, err := m.sys.QMP.DialQMP(ctx, filepath.Join(mc.dir, "qmp.sock"))
	if err != nil {
		return fmt.Errorf("%s vm %s: %w", what, mc.spec.Name, err)
	}
	defer q.Close()
	if err := do(q, ctx); err != nil {
		return fmt.Errorf("%s vm %s: %w", what, mc.spec.Name, err)
	}
	return nil
}

// machine returns VM name, or ErrNotFound wrapped in what (a verb).
func (m *Manager) machine(name, what string) (*machine, error) {
	m.mu.Lock()
	mc, ok := m.vms[name]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%s vm %s: %w", what, name, ErrNotFound)
	}
	return mc, nil
}

// List returns the names of the VMs, sorted.
func (m *Manager) List() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.vms))
}

// ConsolePath is the file a VM's serial console is written to (kept
// under Config.LogMax by the log rotation of Monitor).
func (m *Manager) ConsolePath(name string) (string, error) {
	mc, err := m.machine(name, "console of")
	if err != nil {
		return "", err
	}
	return filepath.Join(mc.dir, "console.log"), nil
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
	if m.sys.Pids.QEMU(mc.state.QEMU) {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if q, err := m.sys.QMP.DialQMP(qctx, filepath.Join(mc.dir, "qmp.sock")); err == nil {
			if err := q.SystemPowerdown(qctx); err != nil {
				m.log.Warn("powerdown", "vm", name, "err", err)
			}
			q.Close()
		}
		cancel()
		if !waitGone(ctx, m.sys.Pids, mc.state.QEMU, m.cfg.StopTimeout) {
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
	pids := m.sys.Pids
	kill := func(pid int, p Process, isQEMU bool) {
		if p != nil {
			p.Kill()
			return
		}
		// A recycled pid is never killed: the process must name the
		// VM's directory.
		if pid > 0 && (!isQEMU || pids.QEMU(pid)) && pids.OfVM(pid, mc.dir) {
			if err := pids.Kill(pid); err != nil {
				m.log.Warn("vm_kill_pid", "pid", pid, "err", err)
			}
			waitGone(context.Background(), pids, pid, 5*time.Second)
		}
	}
	kill(mc.state.QEMU, mc.proc, true)
	for i, pid := range mc.state.Virtiofsd {
		var p Process
		if i < len(mc.fsds) {
			p = mc.fsds[i]
		}
		kill(pid, p, false)
	}
}

// waitGone waits until pid is no longer a live process (a zombie counts
// as gone) or timeout.
func waitGone(ctx context.Context, pids Pids, pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !pids.Live(pid) {
			return true
		}
		if !wait.Sleep(ctx, 20*time.Millisecond) {
			return false
		}
	}
	return !pids.Live(pid)
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
		alive := errSpec == nil && errState == nil && m.sys.Pids.QEMU(mc.state.QEMU) && m.sys.Pids.OfVM(mc.state.QEMU, dir)
		if alive {
			qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			q, err := m.sys.QMP.DialQMP(qctx, filepath.Join(dir, "qmp.sock"))
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
			// A crash between starting a process and recording its pid
			// leaves it unrecorded; it still names the VM's directory (a
			// QEMU holding the VM's tap would keep the next one from it).
			for _, pid := range m.sys.Pids.OfDir(dir) {
				m.log.Info("vm_kill_unrecorded", "vm", e.Name(), "pid", pid)
				if err := m.sys.Pids.Kill(pid); err != nil {
					m.log.Warn("vm_kill_pid", "pid", pid, "err", err)
				}
				waitGone(ctx, m.sys.Pids, pid, 5*time.Second)
			}
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

// emptyDir makes p an empty directory of root's that nobody else may
// write (QEMU's chroot).
func emptyDir(p string) error {
	if err := os.Mkdir(p, 0o555); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating %s: %w", p, err)
	}
	st, err := os.Lstat(p)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("chroot %s: not a directory", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("chroot %s: not empty", p)
	}
	return os.Chmod(p, 0o555)
}

func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", p, err)
	}
	return atomicfile.WriteFile(p, b, 0o600)
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
