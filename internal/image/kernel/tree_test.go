package kernel

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

const testVersion = "9.9.9-test-amd64"

// writeFiles writes files (path relative to root -> content) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, data := range files {
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeDeb builds a kernel package in dir: a bzImage whose xz payload is
// an ELF header, and an empty modules directory.
func fakeDeb(t *testing.T, dir string) {
	t.Helper()
	testutil.RequireBinary(t, "dpkg-deb")
	testutil.RequireBinary(t, "xz")
	xz := exec.Command("xz", "-c")
	xz.Stdin = strings.NewReader("\x7fELF fake kernel")
	payload, err := xz.Output()
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	pkg := t.TempDir()
	writeFiles(t, pkg, map[string]string{
		"DEBIAN/control": "Package: linux-image-" + testVersion + "\nVersion: 1\nArchitecture: amd64\n" +
			"Maintainer: test <test@example.com>\nDescription: test kernel\n",
		"boot/vmlinuz-" + testVersion:                   "MZ setup code " + string(payload),
		"lib/modules/" + testVersion + "/modules.order": "",
	})
	deb := filepath.Join(dir, "linux-image-"+testVersion+"_1_amd64.deb")
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-b", pkg, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -b: %v\n%s", err, out)
	}
}

func TestFind(t *testing.T) {
	log := testutil.Logger(t)
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string // "" = a kernel is found
		noKern  bool   // the error is ErrNoKernel
		deb     bool   // found through the package
	}{
		{name: "tree", setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{
				"lib/modules/" + testVersion + "/kernel/fs/btrfs/btrfs.ko": "module",
				"vmlinux-" + testVersion:                                   "\x7fELF kernel",
			})
		}},
		{name: "deb-dir", setup: fakeDeb, deb: true},
		{name: "empty", setup: func(*testing.T, string) {}, wantErr: "neither an unpacked kernel", noKern: true},
		{name: "missing-dir", setup: func(t *testing.T, dir string) { os.Remove(dir) }, wantErr: "neither an unpacked kernel", noKern: true},
		{name: "tree-without-vmlinux", setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"lib/modules/" + testVersion + "/modules.order": ""})
		}, wantErr: "uncompressed kernel"},
		{name: "tree-compressed-vmlinux", setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"lib/modules/" + testVersion + "/modules.order": "", "vmlinux-" + testVersion: "MZ"})
		}, wantErr: "is not an ELF kernel"},
		{name: "tree-two-versions", setup: func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"lib/modules/a/modules.order": "", "lib/modules/b/modules.order": ""})
		}, wantErr: "want one directory in lib/modules, found 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			k, err := Find(context.Background(), dir, log)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one saying %q", err, tt.wantErr)
				}
				if got := errors.Is(err, ErrNoKernel); got != tt.noKern {
					t.Fatalf("errors.Is(err, ErrNoKernel) = %v, want %v", got, tt.noKern)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.Version != testVersion {
				t.Errorf("version: got %q, want %q", k.Version, testVersion)
			}
			b, err := os.ReadFile(k.Vmlinux)
			if err != nil || !strings.HasPrefix(string(b), "\x7fELF") {
				t.Errorf("vmlinux %s: %q %v", k.Vmlinux, b, err)
			}
			if fi, err := os.Stat(k.ModulesDir()); err != nil || !fi.IsDir() {
				t.Errorf("modules dir %s: %v", k.ModulesDir(), err)
			}
			if got := k.Deb != ""; got != tt.deb {
				t.Errorf("Deb = %q, want a package: %v", k.Deb, tt.deb)
			}
			if tt.deb {
				// The unpacked package is itself a tree.
				tk, err := OpenTree(k.Root)
				if err != nil {
					t.Fatalf("OpenTree of the unpacked package: %v", err)
				}
				if tk.Vmlinux != k.Vmlinux || tk.BzImage != k.BzImage || tk.Deb != "" {
					t.Errorf("OpenTree: got %+v, want the paths of %+v", tk, k)
				}
			}
		})
	}
}
