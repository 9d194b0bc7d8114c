package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/zos-go/zos/internal/lab"
)

// runLab is `zgrid lab`: a grid and N hosted nodes on a farm LAN on this
// machine (root), for trying multi-node features.
//
//	zgrid lab up --nodes N --dir DIR [--zos PATH] [--ssd 8G] [--hdd 3G] [--node-arg ARG]...
//	zgrid lab down --dir DIR
//
// up runs in the foreground until interrupted, then removes everything;
// down (from another shell, or after a crash) stops a running up and
// removes whatever of the lab is left: namespaces, links, mounts, loop
// devices, processes.
func runLab(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "up" && args[0] != "down") {
		return errors.New("usage: zgrid lab up --nodes N --dir DIR | zgrid lab down --dir DIR")
	}
	fs := flag.NewFlagSet("zgrid lab "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "directory of the lab (grid data, farmer's zosctl home, node disks); required")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	var cfg lab.Config
	if args[0] == "up" {
		fs.IntVar(&cfg.Nodes, "nodes", 3, "number of nodes (1 to 16)")
		fs.StringVar(&cfg.ZOS, "zos", "", "zos binary of the nodes (default: zos next to zgrid)")
		fs.StringVar(&cfg.SSD, "ssd", "8G", "each node's hosted SSD (sparse file)")
		fs.StringVar(&cfg.HDD, "hdd", "3G", "each node's hosted HDD (sparse file)")
		fs.Func("node-arg", "an argument added to every node's command line (--node-arg=--vm-kernel=DIR), repeatable", func(v string) error {
			cfg.NodeArgs = append(cfg.NodeArgs, v)
			return nil
		})
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *dir == "" {
		return errors.New("--dir is required")
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	log := newLogger(*logLevel).With("component", "lab")
	if args[0] == "down" {
		if err := lab.DownDir(abs, log); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "lab in %s removed\n", abs)
		return nil
	}
	cfg.Dir = abs
	if cfg.ZOS == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cfg.ZOS = filepath.Join(filepath.Dir(exe), "zos")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	l, err := lab.Up(ctx, cfg, log)
	if err != nil {
		return err
	}
	l.Usage(stdout)
	log.Info("lab_ready", "id", l.ID, "grid", l.Grid, "state", filepath.Join(abs, lab.StateFile))
	waitErr := l.Wait(ctx)
	log.Info("lab_down")
	return errors.Join(waitErr, l.Down())
}
