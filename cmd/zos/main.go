// Command zos is the Zero-OS node. Subcommands:
//
//	zos node ...   run the node (hosted mode on an existing Linux host)
//	zos zdb ...    run the 0-db compatible key-value server on its own
//	zos planetary ...   run the yggdrasil overlay and its TUN (started by the node in its namespace)
//	zos flist mount ...   serve one flist read-only over FUSE (the node's flist daemons)
//	zos init ...   PID 1 of the bootable image (automatic when zos runs as PID 1)
//	zos kernel fetch --dir DIR   fetch and unpack Debian's kernel for the image
//	zos version    print the version
//	zos update-guard ...   watch a trial version after a live update (started by the node)
//
// main parses the subcommand, takes a context cancelled on SIGINT/SIGTERM,
// calls the subcommand's run function and is the only place that exits.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/zos-go/zos/internal/version"
)

// commands maps a name to its entry point; each lives in its own file.
func commands() map[string]func(ctx context.Context, args []string) error {
	return map[string]func(ctx context.Context, args []string) error{
		"version":      func(context.Context, []string) error { fmt.Println(version.String()); return nil },
		"zdb":          runZdb,
		"node":         runNode,
		"planetary":    runPlanetary,
		"init":         runInit,
		"kernel":       runKernel,
		"flist":        runFlist,
		"update-guard": runUpdateGuard,
	}
}

func main() {
	if os.Getpid() == 1 { // the image's /init: never returns
		runPID1()
	}
	subcommands := commands()
	if len(os.Args) < 2 || subcommands[os.Args[1]] == nil {
		names := make([]string, 0, len(subcommands))
		for n := range subcommands {
			names = append(names, n)
		}
		sort.Strings(names)
		fmt.Fprintf(os.Stderr, "usage: zos <command> [flags]\ncommands: %v\n", names)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := subcommands[os.Args[1]](ctx, os.Args[2:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "zos %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
