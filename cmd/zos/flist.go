package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"

	"github.com/zos-go/zos/internal/node/flistd"
)

// runFlist serves one flist read-only over FUSE in the foreground until
// SIGTERM, then unmounts. The node's flist module starts one such daemon
// per distinct flist, in its own session, so that mounts outlive the node.
//
// The flist's block stores are read through the node's egress policy:
// public addresses, and what --egress-allow adds (as `zos node`).
//
//	zos flist mount --meta FILE.fl [--cache DIR] [--cache-size BYTES] [--egress-allow PREFIX]... MOUNTPOINT
func runFlist(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "mount" {
		return errors.New("usage: zos flist mount --meta FILE.fl [--cache DIR] [--cache-size BYTES] [--egress-allow PREFIX]... MOUNTPOINT")
	}
	fs := flag.NewFlagSet("flist mount", flag.ContinueOnError)
	meta := fs.String("meta", "", "flist metadata file (required)")
	cache := fs.String("cache", "/var/cache/zos/flist-blocks", "block cache directory, shared by every daemon")
	cacheSize := fs.Int64("cache-size", flistd.DefaultCacheSize, "cache bound in bytes")
	var allow egressFlag
	fs.Var(&allow, "egress-allow", "prefix, address, private or loopback the stores may be at, repeatable")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *meta == "" || fs.NArg() != 1 {
		return errors.New("want --meta and one mount point")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "flist-daemon")
	return flistd.Serve(ctx, flistd.DaemonConfig{Meta: *meta, CacheDir: *cache, CacheSize: *cacheSize, Mountpoint: fs.Arg(0), EgressAllow: allow}, log)
}
