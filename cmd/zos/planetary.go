package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/zos-go/zos/internal/node/planetary"
	"github.com/zos-go/zos/internal/sys/nft"
)

// runPlanetary runs the node's yggdrasil overlay with its TUN in the
// current network namespace (the node starts it inside its namespace) and
// prints "<address> <subnet>" once up.
//
//	zos planetary --data DIR --peer tcp://HOST:PORT [--peer ...] [--listen URI] [--tun ygg0]
func runPlanetary(ctx context.Context, args []string) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "planetary")
	return planetary.Main(ctx, args, nft.Tables{}, os.Stdout, log)
}
