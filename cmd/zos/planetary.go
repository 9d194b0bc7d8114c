package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/zos-go/zos/internal/node/planetary"
)

// stringsFlag collects a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return fmt.Sprint([]string(*s)) }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// runPlanetary runs the node's yggdrasil overlay with its TUN in the
// current network namespace (the node starts it inside its namespace) and
// prints "<address> <subnet>" once up.
//
//	zos planetary --data DIR --peer tcp://HOST:PORT [--peer ...] [--listen URI] [--tun ygg0]
func runPlanetary(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("planetary", flag.ContinueOnError)
	var cfg planetary.Config
	var peers, listen stringsFlag
	fs.StringVar(&cfg.DataDir, "data", "", "directory holding the overlay key (required)")
	fs.Var(&peers, "peer", "public yggdrasil peer URI, repeatable")
	fs.Var(&listen, "listen", "listen URI for inbound peers, repeatable (default: none)")
	tun := fs.String("tun", "ygg0", "name of the TUN device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Peers, cfg.Listen = peers, listen
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "planetary")
	return planetary.Run(ctx, cfg, *tun, os.Stdout, log)
}
