package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/zos-go/zos/internal/node/node"
	"github.com/zos-go/zos/internal/node/update"
	"github.com/zos-go/zos/internal/version"
)

// updateFlags are `zos node`'s self-update options.
type updateFlags struct {
	hub, root, channel string
	every, gate        time.Duration
}

func addUpdateFlags(fs *flag.FlagSet) *updateFlags {
	u := &updateFlags{}
	fs.StringVar(&u.hub, "update-hub", "", "the grid's hub serving releases (http://HOST:PORT); with --update-root, the node updates itself")
	fs.StringVar(&u.root, "update-root", "", "TUF root.json of the grid's releases (zosctl release init) the node trusts")
	fs.StringVar(&u.channel, "update-channel", "production", "release channel followed")
	fs.DurationVar(&u.every, "update-every", 10*time.Minute, "how often the channel is checked")
	fs.DurationVar(&u.gate, "update-gate", 2*time.Minute, "how long a new version has to come up healthy before it is rolled back")
	return u
}

// runNodeUpdating runs the hosted node (`zos node`) with self-update.
func runNodeUpdating(ctx context.Context, cfg node.Config, u *updateFlags, args []string, log *slog.Logger) error {
	if u.hub == "" || u.root == "" {
		return node.Run(ctx, cfg, log)
	}
	root, err := os.ReadFile(u.root)
	if err != nil {
		return fmt.Errorf("--update-root: %w", err)
	}
	run := func(ctx context.Context, m node.Updater) error {
		cfg.Update = m
		return node.Run(ctx, cfg, log)
	}
	return runUpdating(ctx, u, root, updating{sub: []string{"node"}, args: args, dir: filepath.Join(cfg.DataDir, "update"), guard: true}, run, log)
}

// updating is how a node command re-executes itself under self-update.
type updating struct {
	sub  []string // the subcommand: node, or init node (the booted image's child)
	args []string // its arguments
	dir  string   // the update directory (DATA/update)
	// guard starts `zos update-guard` before a trial: the hosted node has
	// no supervisor; the booted image's init guards its child itself
	// (internal/node/boot: update.GiveUpTrial, update.TrialOverdue).
	guard bool
}

// runUpdating runs a node with self-update: first Boot picks the version
// (exec'ing a verified slot when it is not this one), then run runs the
// node with the update module; a switch it asks for stops the node like
// a restart (workloads stay) and execs the version, same pid.
func runUpdating(ctx context.Context, u *updateFlags, root []byte, how updating, run func(context.Context, node.Updater) error, log *slog.Logger) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ulog := log.With("component", "update")
	d := update.Boot(how.dir, self, version.String(), how.args, os.Getenv, ulog)
	if d.Exec != "" {
		ulog.Info("update_boot_slot", "binary", d.Exec)
		return execZos(d.Exec, how.sub, how.args, "")
	}
	m, err := update.New(update.Config{Dir: how.dir, Hub: u.hub, Root: root, Channel: u.channel, Every: u.every,
		Gate: u.gate, Running: version.String()}, d.Trial, ulog)
	if err != nil {
		return err
	}
	err = run(ctx, m)
	var sw *update.Switch
	if !errors.As(err, &sw) {
		return err
	}
	ulog.Info("update_exec", "version", sw.Version, "binary", sw.Binary, "reason", sw.Reason)
	if sw.Trial != "" && how.guard {
		// The guard is this (known-good) binary, watching the trial from outside.
		g := exec.Command(self, "update-guard", "--dir", how.dir, "--pid", strconv.Itoa(os.Getpid()),
			"--version", sw.Trial, "--bound", update.GuardBound(u.gate).String())
		g.Stdout, g.Stderr = os.Stdout, os.Stderr
		// Run, not Start: the guard detaches (guardDetached) and this
		// returns once it has, so no zombie is left to the exec'd node.
		if err := g.Run(); err != nil {
			return fmt.Errorf("starting the update guard: %w", err)
		}
	}
	return execZos(sw.Binary, how.sub, how.args, sw.Trial)
}

// execZos replaces this process by bin with the subcommand and arguments.
func execZos(bin string, sub, args []string, trial string) error {
	argv := append(append([]string{bin}, sub...), args...)
	if err := syscall.Exec(bin, argv, update.Environ(os.Environ(), trial)); err != nil {
		return fmt.Errorf("exec %s: %w", bin, err)
	}
	return nil
}

// guardDetached marks the guard's second process (runUpdateGuard).
const guardDetached = "ZOS_UPDATE_GUARD_DETACHED"

// runUpdateGuard is `zos update-guard`: started by the node before it
// execs a trial version (update.Guard).
func runUpdateGuard(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("zos update-guard", flag.ContinueOnError)
	var cfg update.GuardConfig
	fs.StringVar(&cfg.Dir, "dir", "", "the node's update directory")
	fs.IntVar(&cfg.PID, "pid", 0, "the node's pid")
	fs.StringVar(&cfg.Version, "version", "", "the version on trial")
	fs.DurationVar(&cfg.Bound, "bound", 3*time.Minute, "give the trial up after this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Dir == "" || cfg.PID <= 0 || cfg.Version == "" {
		return errors.New("--dir, --pid and --version are required")
	}
	if os.Getenv(guardDetached) == "" {
		// Start the real guard and return at once: it is reparented (to
		// init or a subreaper), the node reaps this process.
		// It stays in the node's process group: what stops the group
		// (a power cut, a test's kill) stops the guard too.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		g := exec.Command(self, os.Args[1:]...)
		g.Env = append(os.Environ(), guardDetached+"=1")
		g.Stdout, g.Stderr = os.Stdout, os.Stderr
		if err := g.Start(); err != nil {
			return fmt.Errorf("starting the update guard: %w", err)
		}
		return g.Process.Release()
	}
	cfg.Stdout, cfg.Stderr = os.Stdout, os.Stderr
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "update-guard")
	return update.Guard(ctx, cfg, log)
}
