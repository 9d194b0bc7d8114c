package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zos-go/zos/internal/flist"
	"github.com/zos-go/zos/internal/release"
)

func releaseCommand() *command {
	return &command{name: "release", summary: "make, sign and publish signed node releases (release managers)", subs: []*command{
		{name: "init", usage: "DIR [--root-keys N --root-threshold T] [--targets-keys N --targets-threshold T]",
			summary: "make a release repository: keys and signed root, targets, snapshot, timestamp", run: releaseInit},
		{name: "add", usage: "DIR --channel CH --version VER NAME=FILE...",
			summary: "stage a release's artifacts (zos=..., vminit=..., kernel=..., initramfs=...)", run: releaseAdd},
		{name: "sign", usage: "DIR [--key FILE...] [--refresh]",
			summary: "sign targets (all DIR/keys when no --key), then snapshot and timestamp once targets has its threshold", run: releaseSign},
		{name: "rollout", usage: "DIR --channel CH --version VER [--farms ID,...] [--percent N] [--pause] [--all]",
			summary: "stage a release: test farms first, then a share of nodes; --pause stops it (sign and publish after)", run: releaseRollout},
		{name: "publish", usage: "DIR [--hub URL] [--twin N]",
			summary: "verify the repository and upload it to the grid's hub (signed by a release twin)", run: releasePublish},
	}}
}

func releaseInit(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("release init", flag.ContinueOnError)
	var opt release.InitOptions
	fs.IntVar(&opt.RootKeys, "root-keys", 1, "root keys to make")
	fs.IntVar(&opt.RootThreshold, "root-threshold", 1, "root signatures needed")
	fs.IntVar(&opt.TargetsKeys, "targets-keys", 1, "targets keys to make")
	fs.IntVar(&opt.TargetsThreshold, "targets-threshold", 1, "targets signatures needed")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want DIR")
	}
	r, err := release.Init(pos[0], opt, release.Config{})
	if err != nil {
		return err
	}
	root, err := r.Root()
	if err != nil {
		return err
	}
	p := filepath.Join(pos[0], "root.json")
	if err := os.WriteFile(p, root, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "release repository in %s; nodes trust %s; keep %s offline\n", pos[0], p, filepath.Join(pos[0], "keys", "root-*.key"))
	return nil
}

func releaseAdd(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("release add", flag.ContinueOnError)
	channel := fs.String("channel", "", "channel (production, testing, ...)")
	ver := fs.String("version", "", "release version (vMAJOR.MINOR.PATCH)")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 || *channel == "" || *ver == "" {
		return usageError("want DIR, --channel, --version and NAME=FILE artifacts")
	}
	files := map[string]string{}
	for _, a := range pos[1:] {
		name, file, ok := strings.Cut(a, "=")
		if !ok || name == "" || file == "" {
			return usageError("artifact %q is not NAME=FILE", a)
		}
		files[name] = file
	}
	r, err := release.Open(pos[0], release.Config{})
	if err != nil {
		return err
	}
	if err := r.Add(*channel, *ver, files); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "staged %s %s (%d artifacts); sign it next\n", *channel, *ver, len(files))
	return nil
}

func releaseSign(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("release sign", flag.ContinueOnError)
	var keys stringList
	fs.Var(&keys, "key", "targets key file (repeatable; default every key in DIR/keys)")
	refresh := fs.Bool("refresh", false, "only re-sign snapshot and timestamp with new expiry")
	r, err := openRepoArg(fs, env, args)
	if err != nil {
		return err
	}
	if *refresh {
		if err := r.Refresh(); err != nil {
			return err
		}
		fmt.Fprintln(env.Stdout, "snapshot and timestamp re-signed")
		return nil
	}
	have, want, err := r.Sign(keys...)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "targets: %d of %d signatures\n", have, want)
	return nil
}

func releasePublish(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("release publish", flag.ContinueOnError)
	hubURL := fs.String("hub", envOr(env, "ZOS_HUB", DefaultHub), "hub URL ($ZOS_HUB)")
	twin := fs.Uint("twin", 0, "release twin signing the upload (default: the key's twin on the grid)")
	gf := addGridFlags(fs, env)
	r, err := openRepoArg(fs, env, args)
	if err != nil {
		return err
	}
	if err := r.Verify(); err != nil {
		return err
	}
	signer, err := hubSigner(ctx, *twin, gf)
	if err != nil {
		return err
	}
	res, err := r.Publish(ctx, flist.NewHubClient(*hubURL, signer))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "published %d artifacts and %d metadata files to %s\n", len(res.Targets), len(res.Metadata), *hubURL)
	return nil
}

func releaseRollout(_ context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("release rollout", flag.ContinueOnError)
	channel := fs.String("channel", "", "channel of the release")
	ver := fs.String("version", "", "version of the release")
	farms := fs.String("farms", "", "comma-separated farms that take the release first (test farms)")
	percent := fs.Int("percent", 0, "share of the other nodes that take it (0-100)")
	pause := fs.Bool("pause", false, "stop the release reaching more nodes")
	all := fs.Bool("all", false, "no staging: every node takes it")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *channel == "" || *ver == "" {
		return usageError("want DIR, --channel and --version")
	}
	var ro *release.Rollout
	if !*all {
		ro = &release.Rollout{Percent: *percent, Paused: *pause}
		for _, f := range strings.Split(*farms, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			id, err := strconv.ParseUint(f, 10, 32)
			if err != nil {
				return usageError("bad farm id %q", f)
			}
			ro.Farms = append(ro.Farms, uint32(id))
		}
	}
	r, err := release.Open(pos[0], release.Config{})
	if err != nil {
		return err
	}
	if err := r.SetRollout(*channel, *ver, ro); err != nil {
		return err
	}
	switch {
	case ro == nil:
		fmt.Fprintf(env.Stdout, "%s %s goes to every node; sign and publish next\n", *channel, *ver)
	default:
		fmt.Fprintf(env.Stdout, "%s %s: farms %v first, then %d%% of nodes, paused %v; sign and publish next\n", *channel, *ver, ro.Farms, ro.Percent, ro.Paused)
	}
	return nil
}

// openRepoArg parses the flags of a command whose one argument is the
// release repository's directory, and opens it.
func openRepoArg(fs *flag.FlagSet, env *Env, args []string) (*release.Repo, error) {
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 1 {
		return nil, usageError("want DIR")
	}
	return release.Open(pos[0], release.Config{})
}
