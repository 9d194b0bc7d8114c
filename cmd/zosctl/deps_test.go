package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

const module = "github.com/zos-go/zos/"

// allowedSys are the kernel adapters zosctl's own commands need.
var allowedSys = map[string]string{
	module + "internal/sys/fuse": "zosctl flist mount serves a FUSE mount",
	module + "internal/sys/term": "terminal detection of the CLI",
}

// forbiddenPrefixes are what a client must not link: the node, the kernel
// adapters (but allowedSys), the grid's embedded NATS server, and the
// kernel and storage libraries of the node.
var forbiddenPrefixes = []string{
	module + "internal/node",         // the node and every package under it
	module + "internal/sys",          // kernel adapters, but allowedSys
	module + "internal/natsd",        // the embedded NATS server
	"github.com/nats-io/nats-server", // nats-server itself
	"github.com/vishvananda/netlink", // the node's network module
	"github.com/vishvananda/netns",
	"golang.zx2c4.com/wireguard", // wireguard-go, wgctrl
	"go.etcd.io/bbolt",           // the node's stores
}

// forbidden returns the packages of deps zosctl must not link.
func forbidden(deps []string) []string {
	var bad []string
	for _, p := range deps {
		if _, ok := allowedSys[p]; ok {
			continue
		}
		if slices.ContainsFunc(forbiddenPrefixes, func(f string) bool { return p == f || strings.HasPrefix(p, f+"/") }) {
			bad = append(bad, p)
		}
	}
	return bad
}

func TestForbidden(t *testing.T) {
	for _, tt := range []struct {
		name string
		deps []string
		want []string
	}{
		{"clean", []string{"fmt", module + "internal/cli", module + "internal/nodeapi", module + "internal/sys/fuse", module + "internal/sys/term"}, nil},
		{"the node api", []string{module + "internal/node/api"}, []string{module + "internal/node/api"}},
		{"the node itself", []string{module + "internal/node"}, []string{module + "internal/node"}},
		{"a kernel adapter", []string{module + "internal/sys/netns", module + "internal/sys/fuse"}, []string{module + "internal/sys/netns"}},
		{"a new kernel adapter", []string{module + "internal/sys/kmod"}, []string{module + "internal/sys/kmod"}},
		{"nats-server", []string{"github.com/nats-io/nats-server/v2/server"}, []string{"github.com/nats-io/nats-server/v2/server"}},
		{"natsd", []string{module + "internal/natsd"}, []string{module + "internal/natsd"}},
		{"netlink", []string{"github.com/vishvananda/netlink/nl"}, []string{"github.com/vishvananda/netlink/nl"}},
		{"a name sharing a prefix", []string{module + "internal/nodeapi", module + "internal/natsdx"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := forbidden(tt.deps); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// goTool returns the go command, or skips.
func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		p := filepath.Join(root, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	testutil.Skip(t, "needs the go command on PATH to list zosctl's dependencies")
	return ""
}

// TestDeps keeps zosctl a client: it links no package of the node, no
// kernel adapter beyond what its own commands need (allowedSys), and not
// the NATS server.
func TestDeps(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool(t), "list", "-deps", ".").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"internal/cli") {
		t.Fatalf("go list -deps lists no %sinternal/cli: got %d packages", module, len(deps))
	}
	if bad := forbidden(deps); len(bad) > 0 {
		t.Errorf("zosctl links packages a client must not:\n  %s\n(move what the CLI needs into a pure package; see internal/nodeapi, internal/mesh)", strings.Join(bad, "\n  "))
	}
	for p, why := range allowedSys {
		if !slices.Contains(deps, p) {
			t.Errorf("%s is allowed (%s) but no longer linked: drop it from allowedSys", p, why)
		}
	}
}
