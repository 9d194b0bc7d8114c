package image_test

import (
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/cpio"
	"github.com/zos-go/zos/internal/image"
	"github.com/zos-go/zos/internal/image/kernel"
	guestvm "github.com/zos-go/zos/internal/node/vm"
	"github.com/zos-go/zos/internal/testutil"
)

// testGuestKernel checks the image's guest kernel tree, extracted with the
// node's modules its links point to: it opens as a tree, and the node's
// guest initramfs built from it holds the same modules, in the same order,
// as one built from the whole kernel package.
func testGuestKernel(t *testing.T, e *imageEnv, initramfs string) {
	var ents []cpio.ReadEntry
	for _, en := range listInitramfs(t, initramfs) {
		dir := en.Mode&0o170000 == 0o040000
		if dir || strings.HasPrefix(en.Path, image.GuestKernelDir+"/") || strings.HasPrefix(en.Path, "/usr/lib/modules/") || en.Path == image.VminitFile {
			ents = append(ents, en)
		}
	}
	root := t.TempDir()
	extract(t, ents, root)
	k, err := kernel.OpenTree(filepath.Join(root, image.GuestKernelDir))
	if err != nil {
		t.Fatal(err)
	}
	full, err := kernel.Fetch(t.Context(), e.cache, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != full.Version {
		t.Fatalf("guest kernel %s, want %s", k.Version, full.Version)
	}
	vminit := filepath.Join(root, image.VminitFile)
	got, err := guestvm.BuildInitramfs(guestvm.InitramfsConfig{Vminit: vminit, ModulesDir: k.ModulesDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want, err := guestvm.BuildInitramfs(guestvm.InitramfsConfig{Vminit: vminit, ModulesDir: full.ModulesDir()}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Missing) > 0 || !slices.Equal(got.Modules, want.Modules) {
		t.Fatalf("guest initramfs from the image's tree: modules %q, missing %q; from the package: %q", got.Modules, got.Missing, want.Modules)
	}
}
