// Package lab runs a grid on one machine (zgrid lab up): an embedded grid,
// a farm, and N hosted nodes in network namespaces on a farm LAN, ready
// for zosctl; Down removes every namespace, link, mount, loop device and
// process of it. It is what the e2e tests' network lab does, for people:
// the way to try multi-node features on a laptop (like kind or talosctl
// cluster create). Only cmd/zgrid uses it; it needs root.
package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/atomicfile"
	"github.com/zos-go/zos/internal/cli"
	"github.com/zos-go/zos/internal/gridd"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/sys/proc"
)

// maxDir bounds the lab directory's length (see Validate).
const maxDir = 28

// StateFile is the lab's state in its directory.
const StateFile = "lab.json"

// Config of a lab.
type Config struct {
	// Dir holds everything of the lab: the grid's data, the farmer's
	// zosctl home, each node's disks and pools.
	Dir string
	// Nodes is how many nodes run (1 to 16).
	Nodes int
	// ZOS is the zos binary the nodes run.
	ZOS string
	// SSD and HDD are each node's hosted disk sizes ("8G", "3G").
	SSD, HDD string
	// NodeArgs are added to every node's command line (--vm-kernel DIR,
	// --metrics ..., ...).
	NodeArgs []string
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.Dir == "" || !filepath.IsAbs(c.Dir) {
		return fmt.Errorf("lab directory %q must be an absolute path", c.Dir)
	}
	// VMs' sockets (virtiofsd, QMP) live under the node's pools in Dir:
	// a unix socket path has at most 108 bytes.
	if len(c.Dir) > maxDir {
		return fmt.Errorf("lab directory %q is %d bytes: at most %d, VM sockets under it must fit in 108 (use /tmp/lab or so)", c.Dir, len(c.Dir), maxDir)
	}
	if c.Nodes < 1 || c.Nodes > 16 {
		return fmt.Errorf("--nodes %d: want 1 to 16", c.Nodes)
	}
	if c.ZOS == "" {
		return errors.New("the zos binary is required (--zos)")
	}
	if c.SSD == "" {
		c.SSD = "8G"
	}
	if c.HDD == "" {
		c.HDD = "3G"
	}
	return nil
}

// State is what a running lab writes to Dir/lab.json: how to reach it and
// what to remove.
type State struct {
	ID       string      `json:"id"`
	PID      int         `json:"pid"` // of zgrid lab up
	Dir      string      `json:"dir"`
	Grid     string      `json:"grid"`     // NATS URL: ZOS_GRID
	Explorer string      `json:"explorer"` // host:port
	Hub      string      `json:"hub"`      // host:port
	FarmID   uint32      `json:"farm_id"`
	Farmer   string      `json:"farmer"` // the farmer's ZOSCTL_HOME
	Net      Net         `json:"net"`
	Nodes    []NodeState `json:"nodes"`
}

// NodeState is a node of the lab.
type NodeState struct {
	ID      uint32 `json:"id"` // once registered
	Data    string `json:"data"`
	PID     int    `json:"pid"`
	ZDBPort int    `json:"zdb_port"`
	Log     string `json:"log"`
}

// Lab is a running lab.
type Lab struct {
	State
	cfg  Config
	log  *slog.Logger
	stop context.CancelFunc
	grid chan error // Run's result
	cmds []*exec.Cmd

	mu     sync.Mutex // guards closed
	closed bool
}

// Up starts a lab: the network, the grid (in this process), the farmer's
// twin and farm, then the nodes (child processes). On error, what was
// started is removed.
func Up(ctx context.Context, cfg Config, log *slog.Logger) (l *Lab, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, StateFile)); err == nil {
		return nil, fmt.Errorf("%s has a lab already (zgrid lab down --dir %s)", cfg.Dir, cfg.Dir)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	l = &Lab{cfg: cfg, log: log, grid: make(chan error, 1)}
	l.ID, l.PID, l.Dir = hex.EncodeToString(b), os.Getpid(), cfg.Dir
	l.Net = planNet(l.ID, cfg.Nodes)
	defer func() {
		if err != nil {
			err = errors.Join(err, l.Down())
		}
	}()
	// The state is written first: lab down finds what to remove even if
	// up dies half way.
	if err := l.save(); err != nil {
		return nil, err
	}
	if err := l.Net.build(); err != nil {
		return nil, err
	}
	log.Info("lab_network", "internet", l.Net.Internet, "nodes", cfg.Nodes)
	if err := l.startGrid(ctx); err != nil {
		return nil, err
	}
	token, err := l.makeFarm(ctx)
	if err != nil {
		return nil, err
	}
	if err := l.save(); err != nil {
		return nil, err
	}
	for i := range l.Net.Nodes {
		if err := l.startNode(i, token); err != nil {
			return nil, err
		}
		if err := l.save(); err != nil {
			return nil, err
		}
	}
	if err := l.publish(ctx); err != nil {
		return nil, err
	}
	return l, l.save()
}

func (l *Lab) save() error {
	b, err := json.MarshalIndent(l.State, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(l.cfg.Dir, StateFile), append(b, '\n'), 0o600)
}

func (l *Lab) startGrid(ctx context.Context) error {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l.stop = cancel
	ready := make(chan gridd.Addrs, 1)
	cfg := gridd.Config{
		DataDir: filepath.Join(l.cfg.Dir, "grid"), Listen: "127.0.0.1", Port: natsd.RandomPort,
		HTTPPort: natsd.RandomPort, HubPort: natsd.RandomPort, Replicas: 1, Auth: true, ClusterName: "zgrid",
		Ready: func(a gridd.Addrs) { ready <- a },
	}
	go func() { l.grid <- gridd.Run(gctx, cfg, l.log.With("component", "grid")) }()
	select {
	case a := <-ready:
		l.Grid, l.Explorer, l.Hub = a.NATS, a.Explorer, a.Hub
		l.log.Info("lab_grid", "nats", a.NATS, "explorer", a.Explorer, "hub", a.Hub)
		return nil
	case err := <-l.grid:
		l.grid <- err
		return fmt.Errorf("starting the grid: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Minute):
		return errors.New("the grid did not start in 2 minutes")
	}
}

// zosctl runs zosctl in-process as the farmer.
func (l *Lab) zosctl(ctx context.Context, args ...string) (string, error) {
	var out, errb bytes.Buffer
	env := map[string]string{"ZOSCTL_HOME": l.Farmer, "ZOS_GRID": l.Grid}
	code := cli.Run(ctx, args, cli.Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	if code != 0 {
		return "", fmt.Errorf("zosctl %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(errb.String()+out.String()))
	}
	return out.String(), nil
}

// makeFarm gives the farmer a key, a twin and a farm, and returns a farm
// token for the nodes.
func (l *Lab) makeFarm(ctx context.Context) (string, error) {
	l.Farmer = filepath.Join(l.cfg.Dir, "farmer")
	if _, err := l.zosctl(ctx, "key", "new"); err != nil {
		return "", err
	}
	if _, err := l.zosctl(ctx, "twin", "create"); err != nil {
		return "", err
	}
	out, err := l.zosctl(ctx, "farm", "create", "lab-"+l.ID, "--json")
	if err != nil {
		return "", err
	}
	var farm struct {
		ID uint32 `json:"id"`
	}
	if err := json.Unmarshal([]byte(out), &farm); err != nil || farm.ID == 0 {
		return "", fmt.Errorf("farm create answered %q: %v", out, err)
	}
	l.FarmID = farm.ID
	tok, err := l.zosctl(ctx, "farm", "token", strconv.Itoa(int(farm.ID)))
	return strings.TrimSpace(tok), err
}

// freePort is a TCP port free on loopback now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (l *Lab) startNode(i int, token string) error {
	nd := l.Net.Nodes[i]
	data := filepath.Join(l.cfg.Dir, fmt.Sprintf("n%d", i+1))
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(l.cfg.Dir, fmt.Sprintf("node%d.log", i+1))
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append([]string{"node", "--data", data, "--grid", l.Grid, "--farm-token", token,
		"--disk", "ssd:" + l.cfg.SSD, "--disk", "hdd:" + l.cfg.HDD, "--zdb-port", strconv.Itoa(port),
		"--prefix", nd.Prefix, "--netns", nd.NS, "--reserved-mem", "256M",
		// The lab's hub serves flists on 127.0.0.1.
		"--egress-allow", "loopback"}, l.cfg.NodeArgs...)
	cmd := exec.Command(l.cfg.ZOS, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: lab down stops the node and what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting node %d: %w", i+1, err)
	}
	l.cmds = append(l.cmds, cmd)
	l.Nodes = append(l.Nodes, NodeState{Data: data, PID: cmd.Process.Pid, ZDBPort: port, Log: logPath})
	l.log.Info("lab_node", "node", i+1, "pid", cmd.Process.Pid, "netns", nd.NS, "ip", nd.IP, "log", logPath)
	return nil
}

// Wait returns when the grid stops (an error) or ctx ends.
func (l *Lab) Wait(ctx context.Context) error {
	select {
	case err := <-l.grid:
		l.grid <- err
		return fmt.Errorf("the lab's grid stopped: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// Down stops the nodes (SIGTERM, then SIGKILL after 30 s), the grid, and
// removes everything of the lab (Clean) and its state file.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	// Nodes first: they unmount their pools and leave the grid.
	for _, c := range l.cmds {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range l.cmds {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = proc.SignalGroup(c.Process.Pid, syscall.SIGKILL)
			<-done
		}
		// What the node left in its group (VMs outlive it by design).
		_ = proc.SignalGroup(c.Process.Pid, syscall.SIGKILL)
	}
	if l.stop != nil {
		l.stop()
		if err := <-l.grid; err != nil {
			errs = append(errs, fmt.Errorf("grid: %w", err))
		}
		l.grid <- nil
	}
	errs = append(errs, Clean(l.cfg.Dir, l.ID), l.Net.remove())
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return os.Remove(filepath.Join(l.cfg.Dir, StateFile))
}

// ReadState reads the state of the lab in dir.
func ReadState(dir string) (State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		return State{}, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("reading %s: %w", filepath.Join(dir, StateFile), err)
	}
	return s, nil
}

// DownDir removes the lab in dir from another process: it asks the lab's
// zgrid lab up to stop (SIGTERM) and waits up to 90 s for it to clean up,
// then removes whatever is left itself (after a crash, or a killed up).
func DownDir(dir string, log *slog.Logger) error {
	dir = filepath.Clean(dir)
	s, err := ReadState(dir)
	if err != nil {
		return err
	}
	if s.PID > 0 && s.PID != os.Getpid() && isLabUp(s.PID, dir) {
		log.Info("lab_stopping", "pid", s.PID)
		if err := proc.Signal(s.PID, syscall.SIGTERM); err == nil && !waitGone(s.PID, 90*time.Second) {
			log.Warn("lab_up_did_not_stop", "pid", s.PID)
			_ = proc.Signal(s.PID, syscall.SIGKILL)
			waitGone(s.PID, 10*time.Second)
		}
	}
	for _, n := range s.Nodes {
		if n.PID > 0 {
			_ = proc.SignalGroup(n.PID, syscall.SIGKILL)
		}
	}
	errs := []error{Clean(dir, s.ID), s.Net.remove()}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	left, err := Find(dir, s.ID)
	if err != nil {
		return err
	}
	if !left.Empty() {
		return fmt.Errorf("still on the machine: %s", left)
	}
	if err := os.Remove(filepath.Join(dir, StateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// isLabUp reports whether pid is a zgrid lab up of dir (not a recycled
// pid).
func isLabUp(pid int, dir string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	hasLab, hasDir := false, false
	for i, a := range args {
		hasLab = hasLab || a == "lab"
		hasDir = hasDir || (filepath.Clean(a) == dir && i > 0) || strings.TrimPrefix(a, "--dir=") == dir
	}
	return hasLab && hasDir
}

// Usage prints how to use the lab with zosctl.
func (s State) Usage(w io.Writer) {
	fmt.Fprintf(w, `lab %s is up: a grid and %d nodes on the farm LAN 10.99.0.0/24 (farm %d, public config on the LAN)

  export ZOS_GRID=%s
  zosctl key new && zosctl twin create              # you, as a tenant
  zosctl node list                                  # the lab's nodes
  zosctl network create --name net --nodes 1,2 --ip-range 10.20.0.0/16
  zosctl deploy zdb --node 1 --size 1G --name db
  zosctl deploy vm --node 1 --network net --flist URL   # VMs: lab up --node-arg=--vm-kernel=DIR
  ZOSCTL_HOME=%s zosctl farm list     # as the farmer
  explorer: http://%s/nodes   flist hub: http://%s

  zgrid lab down --dir %s                           # removes everything
`, s.ID, len(s.Nodes), s.FarmID, s.Grid, s.Farmer, s.Explorer, s.Hub, s.Dir)
}
