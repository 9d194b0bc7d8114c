package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/node/update"
	"github.com/zos-go/zos/internal/sys/dhcp"
	"github.com/zos-go/zos/internal/sys/input"
	"github.com/zos-go/zos/internal/sys/kmod"
	"github.com/zos-go/zos/internal/sys/netcfg"
	"github.com/zos-go/zos/internal/sys/pid1"
	"github.com/zos-go/zos/internal/wait"
)

// Paths of the image.
const (
	DefaultsFile = "/etc/zos/cmdline"
	ModulesRoot  = "/usr/lib/modules"
	ModulesLoad  = "zos.load"
	DataDir      = "/var/lib/zos"
	StatusFile   = "/run/zos/node.json"
	// UpdateDir is the self-update's directory (update.Boot's, DATA/update
	// of the node child). It is in the RAM root like DataDir itself (the
	// pools are mounted below it, the update is not): slots and state
	// last until the machine stops, and after a reboot the node runs the
	// image's own zos again (the release the machine booted) and updates
	// from there.
	UpdateDir = DataDir + "/update"
)

// DefaultUpdateGate is the health gate of a trial without update_gate=.
const DefaultUpdateGate = 2 * time.Minute

// Updating says whether the command line turns self-update on.
func (c Config) Updating() bool { return c.UpdateHub != "" && c.UpdateRoot != "" }

// Gate is the bound of a new version's health gate.
func (c Config) Gate() time.Duration {
	if c.UpdateGate > 0 {
		return c.UpdateGate
	}
	return DefaultUpdateGate
}

// InitConfig is how the init process runs.
type InitConfig struct {
	// Exe is the zos binary, re-executed as `zos init node ...`.
	Exe string
	// Version is shown on the console.
	Version string
	// Halt powers the machine off at the end (true when PID 1).
	Halt bool
	// Console receives the logs and the status screen (the kernel's
	// console, the serial port); ScreenPath, if set, is a terminal where
	// the screen is redrawn in place (/dev/tty1).
	Console    *os.File
	ScreenPath string
	screen     *os.File
}

// action is what a signal asks of init.
type action int

const (
	actPoweroff action = iota + 1
	actReboot
)

// state is what init knows, guarded by mu, read by the console.
type state struct {
	mu       sync.Mutex
	cfg      Config
	lease    *dhcp.Lease
	link     string
	network  string
	modules  string
	errors   []string // boot errors (command line, mounts, clock)
	nodeUp   bool
	restarts int
	// leased wakes the supervisor when the network has a lease (nil:
	// it polls).
	leased chan struct{}
}

// addError records a boot error once (a retried failure is not repeated;
// the list stays bounded).
func (s *state) addError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	msg := err.Error()
	for _, e := range s.errors {
		if e == msg {
			return
		}
	}
	if len(s.errors) < 20 {
		s.errors = append(s.errors, msg)
	}
}

// Init is PID 1. It returns after the node stopped on poweroff or reboot,
// having powered off (when cfg.Halt) — so it returns only on failure then.
func Init(cfg InitConfig, log *slog.Logger) error {
	start := time.Now()
	st := &state{network: "no link yet", modules: "not loaded", leased: make(chan struct{}, 1)}

	// 1. Pseudo file systems: everything else reads /proc, /sys, /dev.
	if err := pid1.MountPseudo(); err != nil {
		st.addError(err)
		log.Error("mount_failed", "err", err)
	}
	if cfg.ScreenPath != "" {
		if f, err := os.OpenFile(cfg.ScreenPath, os.O_WRONLY|unix.O_NOCTTY, 0); err == nil {
			cfg.screen = f
			defer f.Close()
		}
	}
	os.MkdirAll(filepath.Dir(StatusFile), 0o755)
	os.MkdirAll(DataDir, 0o755)
	os.Setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")

	// 2. Settings: baked-in defaults, then the kernel command line.
	defaults, _ := os.ReadFile(DefaultsFile)
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		st.addError(fmt.Errorf("reading the kernel command line: %w", err))
	}
	bcfg, errs := ParseCmdline(string(defaults), string(cmdline))
	for _, e := range errs {
		st.addError(e)
		log.Warn("cmdline_invalid", "err", e)
	}
	st.cfg = bcfg
	if bcfg.Debug {
		log = slog.New(slog.NewTextHandler(cfg.Console, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	log.Info("boot_config", "farm", bcfg.Farm, "grid", bcfg.Grid, "runmode", bcfg.RunMode, "debug", bcfg.Debug,
		"update_hub", bcfg.UpdateHub, "update_root", bcfg.UpdateRoot, "new_identity", bcfg.NewIdentity,
		"recreate_missing_disks", bcfg.RecreateMissingDisks)

	// 3. Kernel: Ctrl-Alt-Del and orderly power off come to us.
	if cfg.Halt {
		if err := pid1.DisableCtrlAltDel(); err != nil {
			log.Warn("cad_off_failed", "err", err)
		}
		if err := pid1.SetPoweroffCmd(cfg.Exe + " init poweroff"); err != nil {
			log.Warn("poweroff_cmd_failed", "err", err)
		}
	}

	// 4. Modules, in the order the image builder resolved.
	var uts unix.Utsname
	if err := unix.Uname(&uts); err == nil {
		dir := filepath.Join(ModulesRoot, unix.ByteSliceToString(uts.Release[:]))
		t0 := time.Now()
		list, err := os.ReadFile(filepath.Join(dir, ModulesLoad))
		if err != nil {
			st.addError(fmt.Errorf("reading the module list: %w", err))
			log.Error("modules_failed", "err", err)
		}
		loaded, failed := coldplug(dir, parseLoadList(string(list)), kmod.Load)
		for m, e := range failed {
			log.Debug("module_not_loaded", "module", m, "err", e)
		}
		st.modules = fmt.Sprintf("%d modules loaded, %d failed (features this machine lacks)", loaded, len(failed))
		log.Info("modules_loaded", "loaded", loaded, "failed", len(failed), "took", time.Since(t0).Round(time.Millisecond))
	}

	// 5. Clock: the kernel sets it from the RTC when it has one.
	if t, set, err := pid1.ClockFromRTC(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		st.addError(fmt.Errorf("clock: %w", err))
		log.Warn("clock_failed", "err", err)
	} else if set {
		log.Info("clock_set", "time", t)
	}
	if err := netcfg.Up("lo"); err != nil {
		st.addError(err)
	}
	if h, err := os.ReadFile("/etc/hostname"); err == nil {
		unix.Sethostname([]byte(strings.TrimSpace(string(h))))
	}

	// 6. Run: network, node supervisor, console, reaper, signals.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGCHLD, syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	exits := make(chan pid1.Exit, 16)
	var act action
	g, gctx := errgroup.WithContext(ctx)
	n := input.WatchPowerButton(gctx, "/dev/input", func() {
		log.Info("power_button")
		unix.Kill(os.Getpid(), unix.SIGUSR2)
	})
	log.Debug("input_devices", "count", n)
	g.Go(func() error { networkLoop(gctx, st, log.With("component", "network")); return nil })
	g.Go(func() error { superviseNode(gctx, cfg, st, exits, log.With("component", "supervisor")); return nil })
	g.Go(func() error { consoleLoop(gctx, cfg, st, start); return nil })
	g.Go(func() error {
		for {
			select {
			case <-gctx.Done():
				return nil
			case sig := <-sigs:
				switch sig {
				case syscall.SIGCHLD:
					for _, e := range pid1.Reap() {
						select {
						case exits <- e:
						default:
						}
					}
					continue
				case syscall.SIGINT, syscall.SIGUSR1:
					act = actReboot
				default:
					act = actPoweroff
				}
				log.Info("shutdown_requested", "signal", sig.String())
				cancel()
				return nil
			}
		}
	})
	g.Wait()

	// 7. Teardown: the supervisor stopped the node (it unmounted its
	// pools); detach what is left under the data dir, sync, power off.
	if err := pid1.UnmountAll(mountsUnder(DataDir)); err != nil {
		log.Warn("unmount_failed", "err", err)
	}
	log.Info("halting", "reboot", act == actReboot)
	if !cfg.Halt {
		return nil
	}
	return pid1.Halt(act == actReboot)
}

// mountsUnder lists mount points under dir from /proc/self/mounts, in
// mount order.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && (f[1] == dir || strings.HasPrefix(f[1], dir+"/")) {
			out = append(out, f[1])
		}
	}
	return out
}

// networkLoop brings the physical links up, runs DHCP on the first with a
// carrier that answers, applies the lease and renews it; it retries
// forever, saying on the console what is wrong.
func networkLoop(ctx context.Context, st *state, log *slog.Logger) {
	set := func(s string) {
		st.mu.Lock()
		st.network = s
		st.mu.Unlock()
	}
	for ctx.Err() == nil {
		links, err := netcfg.Links("/sys/class/net")
		if err != nil {
			set(err.Error())
			wait.Sleep(ctx, 5*time.Second)
			continue
		}
		var phys []netcfg.Link
		for _, l := range links {
			if l.Physical {
				if err := netcfg.Up(l.Name); err != nil {
					log.Warn("link_up_failed", "link", l.Name, "err", err)
				}
				phys = append(phys, l)
			}
		}
		if len(phys) == 0 {
			set("no network card found")
			wait.Sleep(ctx, 5*time.Second)
			continue
		}
		lease, link, err := acquire(ctx, phys, log)
		if err != nil {
			set(err.Error())
			wait.Sleep(ctx, 5*time.Second)
			continue
		}
		if err := apply(link, lease); err != nil {
			set(err.Error())
			log.Error("lease_apply_failed", "link", link, "err", err)
			wait.Sleep(ctx, 5*time.Second)
			continue
		}
		if len(lease.Ignored) > 0 {
			log.Warn("dhcp_options_ignored", "link", link, "options", lease.Ignored)
		}
		log.Info("network_up", "link", link, "lease", lease.String(), "dns", fmt.Sprint(lease.DNS))
		st.mu.Lock()
		st.lease, st.link, st.network = &lease, link, fmt.Sprintf("%s %s (dhcp)", link, lease)
		st.mu.Unlock()
		select {
		case st.leased <- struct{}{}:
		default:
		}
		// Renew at half the lease time (a full exchange: simple and
		// enough for a node whose address must not change).
		wait.Sleep(ctx, lease.Duration/2)
	}
}

// acquire waits a little for a carrier, then tries DHCP on each link that
// has one.
func acquire(ctx context.Context, links []netcfg.Link, log *slog.Logger) (dhcp.Lease, string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		var errs []error
		carrier := false
		current, _ := netcfg.Links("/sys/class/net")
		for _, l := range current {
			if !l.Physical || !l.Carrier {
				continue
			}
			carrier = true
			mac, _ := net.ParseMAC(l.MAC)
			c := &dhcp.Client{Link: l.Name, MAC: mac, Hostname: "zos"}
			lease, err := c.Acquire(ctx)
			if err == nil {
				return lease, l.Name, nil
			}
			log.Warn("dhcp_failed", "link", l.Name, "err", err)
			errs = append(errs, err)
		}
		if carrier {
			return dhcp.Lease{}, "", fmt.Errorf("no DHCP answer: %w", errors.Join(errs...))
		}
		if time.Now().After(deadline) {
			return dhcp.Lease{}, "", fmt.Errorf("no cable plugged in any of %d network cards", len(links))
		}
		if !wait.Sleep(ctx, 200*time.Millisecond) {
			return dhcp.Lease{}, "", ctx.Err()
		}
	}
}

// apply configures the link and DNS (resolv.conf only from checked
// values: dhcp.Lease.ResolvConf).
func apply(link string, l dhcp.Lease) error {
	rc, err := l.ResolvConf()
	if err != nil {
		return err
	}
	if err := netcfg.SetAddr(link, l.IP, l.Mask); err != nil {
		return err
	}
	if l.Router != nil {
		if err := netcfg.AddDefaultRoute(link, l.Router); err != nil {
			return err
		}
	}
	return os.WriteFile("/etc/resolv.conf", []byte(rc), 0o644)
}

// superviseNode starts `zos init node` once the network has an address,
// restarts it when it dies (backing off) or when the address changes, and
// stops it (SIGTERM, then SIGKILL after 30 s) when ctx ends. With
// self-update on it is also the guard of a trial version (trialGuard):
// a trial that overruns its bound is stopped, and one whose process
// exits is failed before the node starts again, on the version it was
// switched from; it is never retried.
func superviseNode(ctx context.Context, cfg InitConfig, st *state, exits <-chan pid1.Exit, log *slog.Logger) {
	delay := time.Second
	for ctx.Err() == nil {
		st.mu.Lock()
		lease, bcfg := st.lease, st.cfg
		st.mu.Unlock()
		if lease == nil {
			// Woken by the first lease (no 0.5 s poll on the boot path).
			select {
			case <-ctx.Done():
			case <-st.leased:
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if err := bcfg.Validate(); err != nil {
			st.addError(err)
			log.Error("node_not_started", "err", err)
			// Nothing will change without a new boot: wait for shutdown.
			<-ctx.Done()
			return
		}
		var guard *trialGuard
		if bcfg.Updating() {
			guard = &trialGuard{dir: UpdateDir, bound: update.GuardBound(bcfg.Gate())}
		}
		ip := lease.IP.String()
		args := NodeArgs(cfg.Exe, bcfg, ip)
		proc, err := os.StartProcess(cfg.Exe, args, &os.ProcAttr{Files: []*os.File{nil, cfg.Console, cfg.Console},
			Env: os.Environ(), Sys: &syscall.SysProcAttr{Setpgid: true}})
		if err != nil {
			st.addError(fmt.Errorf("starting the node: %w", err))
			wait.Sleep(ctx, delay)
			continue
		}
		started := time.Now()
		st.mu.Lock()
		st.nodeUp = true
		st.mu.Unlock()
		log.Info("node_started", "pid", proc.Pid, "listen", ip)
		status, reason := waitNode(ctx, proc.Pid, exits, st, ip, guard)
		st.mu.Lock()
		st.nodeUp = false
		st.mu.Unlock()
		if reason == "shutdown" {
			stopNode(proc, exits, log)
			return
		}
		if reason != "exited" {
			stopNode(proc, exits, log)
		}
		if guard != nil {
			// Whatever ended it, a trial still named is given up here.
			if v, err := update.GiveUpTrial(guard.dir); err != nil {
				log.Warn("update_state", "err", err)
			} else if v != "" {
				log.Error("update_trial_died", "version", v, "reason", reason, "status", status)
				// The trial's failure is not the node's: start the
				// version before it at once.
				delay = time.Second
			}
		}
		st.mu.Lock()
		st.restarts++
		st.mu.Unlock()
		if time.Since(started) > 5*time.Minute {
			delay = time.Second
		}
		log.Warn("node_exited", "reason", reason, "status", status, "restart_in", delay)
		wait.Sleep(ctx, delay)
		delay = min(delay*2, 30*time.Second)
	}
}

// trialGuard is what init checks of a trial version while the node runs.
type trialGuard struct {
	dir   string        // update.Boot's directory
	bound time.Duration // update.GuardBound of the gate
}

// overdue names a trial past its bound ("": none).
func (g *trialGuard) overdue(now time.Time) string {
	if g == nil {
		return ""
	}
	return update.TrialOverdue(g.dir, g.bound, now)
}

// NodeArgs is the argv of the node child (`zos init node ...`) for the
// boot configuration c and the NIC's address ip.
func NodeArgs(exe string, c Config, ip string) []string {
	args := []string{exe, "init", "node", "--farm", strconv.FormatUint(uint64(c.Farm), 10), "--grid", c.Grid,
		"--listen", ip, "--data", DataDir, "--status", StatusFile}
	if c.FarmToken != "" {
		args = append(args, "--farm-token", c.FarmToken)
	}
	if c.Debug {
		args = append(args, "--debug")
	}
	if c.Location != "" {
		args = append(args, "--location", c.Location)
	}
	if c.NewIdentity {
		args = append(args, "--new-identity")
	}
	if c.RecreateMissingDisks {
		args = append(args, "--recreate-missing-disks")
	}
	if c.EgressAllow != "" {
		for _, e := range strings.Split(c.EgressAllow, ",") {
			args = append(args, "--egress-allow", e)
		}
	}
	if c.Updating() {
		args = append(args, "--update-hub", c.UpdateHub, "--update-root", c.UpdateRoot)
		if c.UpdateChannel != "" {
			args = append(args, "--update-channel", c.UpdateChannel)
		}
		if c.UpdateEvery > 0 {
			args = append(args, "--update-every", c.UpdateEvery.String())
		}
		// Always: init holds the trial to the same gate (trialGuard).
		args = append(args, "--update-gate", c.Gate().String())
	}
	return args
}

// waitNode waits for the node's exit, a shutdown, an address change or a
// trial over its bound (guard, nil without self-update).
func waitNode(ctx context.Context, pid int, exits <-chan pid1.Exit, st *state, ip string, guard *trialGuard) (string, string) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return "", "shutdown"
		case e := <-exits:
			if e.Pid == pid {
				return exitString(e.Status), "exited"
			}
		case <-t.C:
			st.mu.Lock()
			changed := st.lease != nil && st.lease.IP.String() != ip
			st.mu.Unlock()
			if changed {
				return "", "address changed"
			}
			if v := guard.overdue(time.Now()); v != "" {
				return "", "update trial " + v + " not confirmed within " + guard.bound.String()
			}
			// The child may have been reaped between SIGCHLDs of others.
			if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
				return "gone", "exited"
			}
		}
	}
}

func exitString(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exit " + strconv.Itoa(ws.ExitStatus())
}

// stopNode sends SIGTERM and waits up to 30 s for the exit, then kills.
// Exits arrive from the reaper; after ctx ended the reaper may be gone, so
// it also reaps itself.
func stopNode(proc *os.Process, exits <-chan pid1.Exit, log *slog.Logger) {
	proc.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range pid1.Reap() {
			if e.Pid == proc.Pid {
				log.Info("node_stopped", "status", exitString(e.Status))
				return
			}
		}
		select {
		case e := <-exits:
			if e.Pid == proc.Pid {
				log.Info("node_stopped", "status", exitString(e.Status))
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
		if err := unix.Kill(proc.Pid, 0); errors.Is(err, unix.ESRCH) {
			return
		}
	}
	log.Warn("node_killed", "after", "30s")
	unix.Kill(-proc.Pid, unix.SIGKILL)
	proc.Kill()
}

// consoleLoop redraws the status screen every two seconds when it changed.
func consoleLoop(ctx context.Context, cfg InitConfig, st *state, start time.Time) {
	last := ""
	redraw := func() {
		st.mu.Lock()
		s := Screen{Version: cfg.Version, Config: st.cfg, Network: st.network, Modules: st.modules,
			Errors: append([]string(nil), st.errors...), NodeUp: st.nodeUp, Restarts: st.restarts}
		st.mu.Unlock()
		if ns, err := readStatus(StatusFile); err == nil && s.NodeUp {
			s.Node = ns
		}
		s.Listening = Listening("/proc/net/tcp", "/proc/net/tcp6")
		// Compare without the uptime so an idle node stays quiet.
		key := s.Render()
		s.Uptime = time.Since(start)
		if key != last {
			last = key
			text := s.Render()
			if cfg.Console != nil {
				fmt.Fprint(cfg.Console, text)
			}
			if cfg.screen != nil {
				fmt.Fprint(cfg.screen, "\x1b[H\x1b[2J"+text)
			}
		}
	}
	redraw()
	wait.Every(ctx, 2*time.Second, redraw)
}
