package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/flist"
)

// DefaultHub is the hub zosctl talks to without --hub: zgrid --hub on this
// machine.
const DefaultHub = "http://127.0.0.1:8081"

func flistCommand() *command {
	return &command{name: "flist", summary: "build, publish, inspect and mount flists", subs: []*command{
		{name: "build", usage: "SOURCE -o NAME.fl --store URL [--store URL...] [--twin N] [--key FILE] [--grid URL]",
			summary: "build a flist from a directory, tar(.gz), OCI layout or docker save archive", run: flistBuild},
		{name: "push", usage: "NAME.fl [--hub URL] [--repo REPO] [--name NAME] [--tag TAG] [--blocks-from URL]",
			summary: "upload a flist (and optionally its blocks) to the hub", run: flistPush},
		{name: "ls", usage: "[REPO] [--hub URL] [--json]", summary: "list the hub's repositories or a repository's flists", run: flistLs},
		{name: "inspect", usage: "NAME.fl [--tree] [--dedup OTHER.fl] [--json]", summary: "show a flist's tree, sizes, blocks and sharing", run: flistInspect},
		{name: "mount", usage: "NAME.fl DIR [--store URL] [--cache DIR] [--cache-size BYTES]",
			summary: "mount a flist read-only until Ctrl-C (debugging; root)", run: flistMount},
	}}
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func flistLogger(env *Env) *slog.Logger {
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// hubSigner finds the twin that signs hub uploads: --twin, or the key's
// twin on the grid.
func hubSigner(ctx context.Context, twin uint, gf gridFlags) (flist.Signer, error) {
	if twin != 0 {
		key, err := loadKey(*gf.key)
		if err != nil {
			return nil, err
		}
		return flist.KeySigner{Twin: uint32(twin), Key: key}, nil
	}
	s, err := openSession(ctx, gf, true)
	if err != nil {
		return nil, fmt.Errorf("finding the twin that signs uploads (or give --twin): %w", err)
	}
	defer s.Close()
	return flist.KeySigner{Twin: s.twin.ID, Key: s.key}, nil
}

func needsSigner(routes []string) bool {
	for _, r := range routes {
		if strings.Contains(r, "http://") || strings.Contains(r, "https://") {
			return true
		}
	}
	return false
}

func flistBuild(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("flist build", flag.ContinueOnError)
	out := fs.String("o", "", "output flist file (required)")
	var stores stringList
	fs.Var(&stores, "store", "block store, [START-END=]URL: dir://PATH, http(s)://HUB, zdb://[PASS@]HOST:PORT/NS (repeatable; ranges are hex first bytes)")
	twin := fs.Uint("twin", 0, "twin id signing hub uploads (default: the key's twin on the grid)")
	desc := fs.String("description", "", "description tag")
	gf := addGridFlags(fs, env)
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" || len(stores) == 0 {
		return usageError("want SOURCE, -o and at least one --store")
	}
	var routes []flist.Route
	for _, s := range stores {
		r, err := flist.ParseRoute(s)
		if err != nil {
			return usageError("%v", err)
		}
		routes = append(routes, r)
	}
	var o flist.StoreOptions
	if needsSigner(stores) {
		if o.Signer, err = hubSigner(ctx, *twin, gf); err != nil {
			return err
		}
	}
	store, err := flist.NewRouter(routes, o)
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	last := time.Time{}
	cfg := flist.BuildConfig{Tags: map[string]string{}}
	if *desc != "" {
		cfg.Tags[flist.TagDesc] = *desc
	}
	if env.terminal() {
		cfg.Progress = func(s flist.BuildStats) {
			if time.Since(last) < 200*time.Millisecond {
				return
			}
			last = time.Now()
			fmt.Fprintf(env.Stdout, "\r%d entries, %s read, %d blocks (%d new)   ", s.Entries, human(s.Bytes), s.Blocks, s.NewBlocks)
		}
	}
	b := flist.NewBuilder(cfg, store, flistLogger(env))
	if err := flist.AddSource(ctx, b, pos[0]); err != nil {
		return fmt.Errorf("building %s: %w", pos[0], err)
	}
	m, err := b.Finish()
	if err != nil {
		return err
	}
	if err := flist.Write(ctx, *out, m); err != nil {
		return err
	}
	s := b.Stats()
	el := time.Since(start)
	if env.terminal() {
		fmt.Fprint(env.Stdout, "\r")
	}
	fmt.Fprintf(env.Stdout, "%s: %d entries, %s in %d blocks (%d new, %s stored) in %s (%.1f MB/s)\n",
		*out, s.Entries, human(s.Bytes), s.Blocks, s.NewBlocks, human(s.Stored), el.Round(time.Millisecond),
		float64(s.Bytes)/1e6/el.Seconds())
	return nil
}

func flistPush(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("flist push", flag.ContinueOnError)
	hubURL := fs.String("hub", envOr(env, "ZOS_HUB", DefaultHub), "hub URL ($ZOS_HUB)")
	repo := fs.String("repo", "", "repository (default twin<ID>)")
	name := fs.String("name", "", "name on the hub (default the file's name)")
	tag := fs.String("tag", "", "also point this tag at it")
	from := fs.String("blocks-from", "", "copy the flist's blocks from this store to the hub first")
	twin := fs.Uint("twin", 0, "twin id signing the upload (default: the key's twin on the grid)")
	gf := addGridFlags(fs, env)
	m, path, err := oneFlist(ctx, fs, env, args)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading flist: %w", err)
	}
	signer, err := hubSigner(ctx, *twin, gf)
	if err != nil {
		return err
	}
	if *repo == "" {
		*repo = "twin" + strconv.FormatUint(uint64(signer.TwinID()), 10)
	}
	if *name == "" {
		*name = filepath.Base(path)
	}
	if *from != "" {
		src, err := flist.OpenStore(*from, flist.StoreOptions{})
		if err != nil {
			return err
		}
		defer src.Close()
		dst, _ := flist.NewHTTPStore(*hubURL, signer)
		copied, failed := 0, 0
		for id := range m.Blocks() {
			if ok, err := dst.Has(ctx, id); err == nil && ok {
				continue
			}
			b, err := src.Get(ctx, id)
			if err == nil {
				err = dst.Set(ctx, id, b)
			}
			if err != nil {
				failed++
				fmt.Fprintf(env.Stderr, "block %x: %v\n", id, err)
				continue
			}
			copied++
		}
		fmt.Fprintf(env.Stdout, "%d blocks copied to the hub\n", copied)
		if failed > 0 {
			return fmt.Errorf("%d blocks could not be copied", failed)
		}
	}
	c := flist.NewHubClient(*hubURL, signer)
	info, err := c.Upload(ctx, *repo, *name, data)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s/%s/%s (%d bytes, md5 %s)\n", strings.TrimRight(*hubURL, "/"), *repo, info.Name, info.Size, info.MD5)
	if *tag != "" {
		if _, err := c.Tag(ctx, *repo, *tag, *name); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "tag %s/%s -> %s\n", *repo, *tag, *name)
	}
	return nil
}

func flistLs(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("flist ls", flag.ContinueOnError)
	hubURL := fs.String("hub", envOr(env, "ZOS_HUB", DefaultHub), "hub URL ($ZOS_HUB)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	c := flist.NewHubClient(*hubURL, nil)
	if len(pos) == 0 {
		repos, err := c.Repos(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env, repos)
		}
		for _, r := range repos {
			fmt.Fprintln(env.Stdout, r)
		}
		return nil
	}
	list, err := c.List(ctx, pos[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env, list)
	}
	for _, i := range list {
		target := ""
		if i.Target != "" {
			target = " -> " + i.Target
		}
		fmt.Fprintf(env.Stdout, "%-7s %-30s %10d %s %s%s\n", i.Type, i.Name, i.Size, i.MD5,
			time.Unix(i.Updated, 0).UTC().Format(time.RFC3339), target)
	}
	return nil
}

// inspectReport is what flist inspect prints.
type inspectReport struct {
	Entries     map[string]int    `json:"entries"`
	FileBytes   uint64            `json:"file_bytes"`
	BlockRefs   int               `json:"block_refs"`
	Blocks      int               `json:"blocks"`
	BlockSize   int               `json:"block_size"`
	Routes      []string          `json:"routes"`
	Tags        map[string]string `json:"tags"`
	SharedWith  string            `json:"shared_with,omitempty"`
	Shared      int               `json:"shared_blocks,omitempty"`
	SharedRatio float64           `json:"shared_ratio,omitempty"`
}

func flistInspect(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("flist inspect", flag.ContinueOnError)
	tree := fs.Bool("tree", false, "print every entry")
	dedup := fs.String("dedup", "", "count the blocks shared with another flist")
	asJSON := fs.Bool("json", false, "print JSON")
	m, _, err := oneFlist(ctx, fs, env, args)
	if err != nil {
		return err
	}
	r := inspectReport{Entries: map[string]int{}, BlockSize: m.BlockSize, Tags: m.Tags}
	for _, rt := range m.Routes {
		r.Routes = append(r.Routes, rt.String())
	}
	err = m.Walk(func(p string, in *flist.Inode) error {
		r.Entries[typeName(in)]++
		if in.Type() == flist.ModeRegular {
			r.FileBytes += in.Size
		}
		r.BlockRefs += len(in.Blocks)
		if *tree && !*asJSON {
			line := fmt.Sprintf("%s %5d:%-5d %10d /%s", modeString(in), in.UID, in.GID, in.Size, p)
			if in.Type() == flist.ModeSymlink {
				line += " -> " + in.Target
			}
			fmt.Fprintln(env.Stdout, line)
		}
		return nil
	})
	if err != nil {
		return err
	}
	blocks := m.Blocks()
	r.Blocks = len(blocks)
	if *dedup != "" {
		other, err := flist.Open(ctx, *dedup)
		if err != nil {
			return err
		}
		ob := other.Blocks()
		for id := range blocks {
			if _, ok := ob[id]; ok {
				r.Shared++
			}
		}
		r.SharedWith = *dedup
		if len(blocks) > 0 {
			r.SharedRatio = float64(r.Shared) / float64(len(blocks))
		}
	}
	if *asJSON {
		return printJSON(env, r)
	}
	var kinds []string
	for k, n := range r.Entries {
		kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(kinds)
	fmt.Fprintf(env.Stdout, "entries:   %s\n", strings.Join(kinds, ", "))
	fmt.Fprintf(env.Stdout, "content:   %s in %d block references, %d distinct blocks of up to %s\n",
		human(r.FileBytes), r.BlockRefs, r.Blocks, human(uint64(r.BlockSize)))
	fmt.Fprintf(env.Stdout, "routes:    %s\n", strings.Join(r.Routes, " "))
	if r.SharedWith != "" {
		fmt.Fprintf(env.Stdout, "shared:    %d of %d blocks (%.1f%%) with %s\n", r.Shared, r.Blocks, 100*r.SharedRatio, r.SharedWith)
	}
	return nil
}

func typeName(in *flist.Inode) string {
	switch in.Type() {
	case flist.ModeDir:
		return "dirs"
	case flist.ModeRegular:
		return "files"
	case flist.ModeSymlink:
		return "symlinks"
	}
	return "special"
}

func modeString(in *flist.Inode) string {
	return os.FileMode(in.Mode & 0o777).String()[1:] + fmt.Sprintf(" %06o", in.Mode)
}

func flistMount(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("flist mount", flag.ContinueOnError)
	storeURL := fs.String("store", "", "read blocks from this store instead of the flist's routes (e.g. one with a password)")
	cacheDir := fs.String("cache", filepath.Join(os.TempDir(), "zos-flist-cache"), "block cache directory")
	cacheSize := fs.Int64("cache-size", 1<<30, "cache bound in bytes")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("want a flist file and a directory")
	}
	m, err := flist.Open(ctx, pos[0])
	if err != nil {
		return err
	}
	var store flist.Store
	if *storeURL != "" {
		store, err = flist.OpenStore(*storeURL, flist.StoreOptions{})
	} else {
		store, err = flist.NewRouter(m.Routes, flist.StoreOptions{})
	}
	if err != nil {
		return err
	}
	defer store.Close()
	cache, err := flist.NewCache(*cacheDir, *cacheSize)
	if err != nil {
		return err
	}
	mnt, err := flist.MountFS(pos[1], m, flist.MountConfig{Store: store, Cache: cache}, flistLogger(env))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%s mounted on %s; Ctrl-C unmounts\n", pos[0], pos[1])
	err = mnt.Serve(ctx)
	s := mnt.FS.Stats()
	fmt.Fprintf(env.Stdout, "unmounted: %d blocks fetched (%s), %d from cache, %d errors\n", s.Fetched, human(uint64(s.FetchBytes)), s.CacheHits, s.Errors)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// oneFlist parses args with fs and opens the single flist file they name.
func oneFlist(ctx context.Context, fs *flag.FlagSet, env *Env, args []string) (*flist.Meta, string, error) {
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return nil, "", err
	}
	if len(pos) != 1 {
		return nil, "", usageError("want one flist file")
	}
	m, err := flist.Open(ctx, pos[0])
	if err != nil {
		return nil, "", err
	}
	return m, pos[0], nil
}
