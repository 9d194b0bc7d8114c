// Command zosctl is the CLI of Zero-OS users and farmers: keys, deployments,
// the grid. All of it lives in internal/cli; this main only wires the
// process to it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/zos-go/zos/internal/cli"
	"github.com/zos-go/zos/internal/sys/term"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], cli.Env{
		Stdin:      os.Stdin,
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		IsTerminal: func() bool { return term.IsTerminal(os.Stdout.Fd()) },
	})
	stop()
	os.Exit(code)
}
