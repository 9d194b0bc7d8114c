package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/image"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/node/boot"
	"github.com/zos-go/zos/internal/node/node"
	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/sys/pid1"
	"github.com/zos-go/zos/internal/version"
)

// runInit is `zos init`: PID 1 of the Zero-OS image (chosen automatically
// when zos runs as PID 1), and its helpers:
//
//	zos init                 the init process (PID 1 only)
//	zos init node FLAGS      the node child init supervises
//	zos init poweroff|reboot ask PID 1 to stop the node and power off / reboot
func runInit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		if os.Getpid() != 1 {
			return fmt.Errorf("zos init runs as PID 1 of the image only")
		}
		return runPID1()
	}
	switch args[0] {
	case "node":
		return runInitNode(ctx, args[1:])
	case "poweroff":
		return pid1.SignalInit(unix.SIGUSR2)
	case "reboot":
		return pid1.SignalInit(unix.SIGUSR1)
	}
	return fmt.Errorf("unknown init command %q (node, poweroff, reboot)", args[0])
}

// runPID1 runs init and never returns while the machine is up; if init
// fails to halt, it blocks: PID 1 must not exit.
func runPID1() error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "init")
	exe, err := os.Executable()
	if err != nil {
		exe = "/init"
	}
	err = boot.Init(boot.InitConfig{Exe: exe, Version: version.String(), Halt: true, Console: os.Stderr, ScreenPath: "/dev/tty1"}, log)
	log.Error("init_ended", "err", err)
	for {
		time.Sleep(time.Hour)
	}
}

func runInitNode(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("zos init node", flag.ContinueOnError)
	var cfg boot.NodeConfig
	farm := fs.Uint("farm", 0, "farm id")
	fs.StringVar(&cfg.FarmToken, "farm-token", "", "farm token (farm_token=)")
	fs.StringVar(&cfg.Grid, "grid", "", "grid NATS URL")
	fs.StringVar(&cfg.ListenIP, "listen", "", "address of the NIC")
	fs.StringVar(&cfg.DataDir, "data", boot.DataDir, "pool mounts")
	fs.StringVar(&cfg.StatusFile, "status", boot.StatusFile, "status file for the console")
	fs.IntVar(&cfg.ZDBPort, "zdb-port", resp.ZDBPort, "0-db port")
	fs.StringVar(&cfg.VMKernel, "vm-kernel", guestKernel(), "guest kernel of the VMs (default: the image's, when it has one); empty: no VMs")
	fs.StringVar(&cfg.Vminit, "vminit", guestVminit(), "guest init (default: the running release's, next to zos, else the image's)")
	fs.StringVar(&cfg.Accel, "accel", "auto", "VM accelerator: auto (kvm after a canary boot, else tcg), kvm or tcg")
	debug := fs.Bool("debug", false, "debug logs")
	fs.StringVar(&cfg.Location, "location", "", "where the node stands, COUNTRY[,CITY] (location=)")
	fs.BoolVar(&cfg.NewIdentity, "new-identity", false, "take a new key when the node's is lost although it had pools (new_identity)")
	fs.BoolVar(&cfg.RecreateMissingDisks, "recreate-missing-disks", false, "recreate missing disks empty (recreate_missing_disks)")
	fs.Var((*egressFlag)(&cfg.NodeEgress), "egress-allow", "let tenants' flists and zlogs reach this prefix, address, \"private\" or \"loopback\" (egress_allow=), repeatable")
	upd := addUpdateFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *farm > 1<<32-1 {
		return fmt.Errorf("--farm out of range")
	}
	cfg.Farm = uint32(*farm)
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if upd.hub == "" || upd.root == "" {
		return boot.RunNode(ctx, cfg, log)
	}
	// --update-root is update_root=: sha256:HEX of the hub's first root,
	// or a root baked into the image.
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	root, err := boot.LoadUpdateRoot(rctx, upd.hub, upd.root, &http.Client{Timeout: 30 * time.Second})
	cancel()
	if err != nil {
		// The node runs the version it booted rather than not at all;
		// the console shows why it does not update.
		log.Error("update_root_unusable", "err", err)
		return boot.RunNode(ctx, cfg, log)
	}
	cfg.UpdateHub, cfg.UpdateChannel = upd.hub, upd.channel
	cfg.UpdateDir = filepath.Join(cfg.DataDir, "update")
	run := func(ctx context.Context, m node.Updater) error {
		cfg.Update = m
		return boot.RunNode(ctx, cfg, log)
	}
	return runUpdating(ctx, upd, root, updating{sub: []string{"init", "node"}, args: args, dir: cfg.UpdateDir}, run, log)
}

// guestKernel is the image's guest kernel tree, or "" when the image was
// built without VMs.
func guestKernel() string {
	if _, err := os.Stat(image.GuestKernelDir); err != nil {
		return ""
	}
	return image.GuestKernelDir
}

// guestVminit is the guest init of the running release (next to this zos:
// a slot whose release carries one), else the image's: a live update to
// a release of zos alone keeps the image's vminit. "" when neither is
// there (the node then looks next to zos and says what is missing).
func guestVminit() string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "vminit")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if _, err := os.Stat(image.VminitFile); err == nil {
		return image.VminitFile
	}
	return ""
}

// runKernel is `zos kernel fetch --dir DIR`: download and unpack Debian's
// kernel into DIR (idempotent) and print what is there.
func runKernel(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "fetch" {
		return fmt.Errorf("usage: zos kernel fetch --dir DIR")
	}
	fs := flag.NewFlagSet("zos kernel fetch", flag.ContinueOnError)
	dir := fs.String("dir", ".cache/kernel", "cache directory")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "kernel")
	k, err := kernel.Fetch(ctx, *dir, log)
	if err != nil {
		return err
	}
	fmt.Printf("version: %s\nbzImage: %s\nvmlinux: %s\nmodules: %s\n", k.Version, k.BzImage, k.Vmlinux, k.ModulesDir())
	return nil
}
