package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/image"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/registry"
)

func imageCommand() *command {
	return &command{name: "image", summary: "the bootable Zero-OS image", subs: []*command{
		{name: "build", usage: "-o DIR [--farm-token TOKEN] [--farm ID] [--grid URL] [--update-hub URL --update-root FILE] [--kernel-cache DIR] [--zos FILE] [--vminit FILE] [--no-qemu] [--json]",
			summary: "build kernel + initramfs (zos as /init, no shell); --farm-token/--grid boot straight into a farm", run: imageBuild},
	}}
}

func imageBuild(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("image build", flag.ContinueOnError)
	out := fs.String("o", "", "output directory (required)")
	farm := fs.Uint("farm", 0, "farm the node registers under (baked in as farm=; default: the farm token's)")
	farmToken := fs.String("farm-token", "", "the farmer's consent that the node joins the farm (zosctl farm token FARM; baked in as farm_token=)")
	grid := fs.String("grid", "", "grid NATS URL the node connects to (baked in as grid=)")
	updateHub := fs.String("update-hub", "", "the grid's hub the node updates itself from (baked in as update_hub=)")
	updateRoot := fs.String("update-root", "", "release root.json the node trusts (zosctl release init; baked in as "+image.ReleaseRootFile+")")
	cache := fs.String("kernel-cache", ".cache/kernel", "directory of the Debian kernel package (make deps fills it)")
	zos := fs.String("zos", "", "static zos binary (default: next to zosctl, then PATH)")
	vminit := fs.String("vminit", "", "static guest init for the node's VMs (default: next to zosctl, then PATH)")
	noQEMU := fs.Bool("no-qemu", false, "leave QEMU, virtiofsd and the guest kernel out (a node without VMs)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usageError("want -o DIR and no arguments")
	}
	if *farm > 1<<32-1 {
		return usageError("--farm out of range")
	}
	if *farmToken != "" {
		t, err := registry.ParseFarmToken(*farmToken)
		if err != nil {
			return usageError("--farm-token: %v", err)
		}
		if *farm != 0 && uint64(t.FarmID) != uint64(*farm) {
			return usageError("--farm-token is for farm %d, not --farm %d", t.FarmID, *farm)
		}
		if time.Now().After(t.Expires) {
			fmt.Fprintf(env.Stderr, "warning: the farm token expired at %s: new nodes booting this image cannot join farm %d\n", t.Expires.Format(time.RFC3339), t.FarmID)
		}
	}
	if *zos == "" {
		if *zos, err = findBinary("zos"); err != nil {
			return err
		}
	}
	var guest []string
	if !*noQEMU {
		if *vminit == "" {
			if *vminit, err = findBinary("vminit"); err != nil {
				return fmt.Errorf("%w, or --no-qemu for a node without VMs", err)
			}
		}
		guest = append(append(kernel.GuestModules(), kernel.DiskModules()...), kernel.FallbackModules()...)
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := image.Build(ctx, image.Config{Out: *out, KernelCache: *cache, Zos: *zos, Farm: uint32(*farm), FarmToken: *farmToken,
		Grid: *grid, NoQEMU: *noQEMU, Vminit: *vminit, GuestModules: guest, UpdateHub: *updateHub, UpdateRoot: *updateRoot}, log.With("component", "image"))
	if err != nil {
		return fmt.Errorf("building the image: %w", err)
	}
	if *asJSON {
		r := *res
		r.Files = nil
		return printJSON(env, r)
	}
	w := env.Stdout
	fmt.Fprintf(w, "kernel:    %s (%s, %s)\n", res.Kernel, res.BzImage, res.Vmlinux)
	fmt.Fprintf(w, "initramfs: %s\n", res.Initramfs)
	fmt.Fprintf(w, "size:      %d bytes compressed (%.1f MiB), %.1f MiB uncompressed, zstd\n", res.Size, float64(res.Size)/(1<<20), float64(res.RawSize)/(1<<20))
	fmt.Fprintf(w, "sha256:    %s\n", res.SHA256)
	fmt.Fprintf(w, "modules:   %d (not in this kernel: %s)\n", res.Modules, strings.Join(res.Missing, " "))
	fmt.Fprintf(w, "helpers:   %s\n", strings.Join(res.Helpers, " "))
	if res.GuestModules > 0 {
		fmt.Fprintf(w, "guest:     %s: vmlinux, %d modules (not in this kernel: %s); %s\n", image.GuestKernelDir, res.GuestModules, strings.Join(res.GuestMissing, " "), image.VminitFile)
	} else {
		fmt.Fprintf(w, "guest:     none (no VMs)\n")
	}
	fmt.Fprintf(w, "cmdline:   %s\n", res.Cmdline)
	return nil
}

// findBinary looks for one of our binaries (zos, vminit) next to the
// running program, then on PATH.
func findBinary(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), name); fileExists(p) {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("no %s binary next to zosctl or on PATH: pass --%s FILE (make build)", name, name)
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
