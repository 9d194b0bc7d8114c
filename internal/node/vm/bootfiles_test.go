package vm

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCopyBootFiles: the kernel and initrd are copied from the read-only
// tree into the boot directory; a symlink anywhere on their path (to a
// host file, inside the tree, a linked /boot), a path leaving the tree,
// a FIFO or a file over the bound is refused with ErrBootFile, and the
// copies of the previous provision stay as they were.
func TestCopyBootFiles(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "node.key")
	if err := os.WriteFile(secret, []byte("NODE-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	tree := func(t *testing.T) string {
		ro := t.TempDir()
		if err := os.MkdirAll(filepath.Join(ro, "boot"), 0o755); err != nil {
			t.Fatal(err)
		}
		for p, data := range map[string]string{"boot/vmlinuz": "kernel v2", "boot/initrd.img": "initrd v2"} {
			if err := os.WriteFile(filepath.Join(ro, p), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return ro
	}
	symlink := func(t *testing.T, to, p string) {
		t.Helper()
		os.Remove(p)
		if err := os.Symlink(to, p); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name           string
		mod            func(t *testing.T, ro string)
		kernel, initrd string
	}{
		{"kernel links to a host file", func(t *testing.T, ro string) { symlink(t, secret, filepath.Join(ro, "boot/vmlinuz")) }, "/boot/vmlinuz", "/boot/initrd.img"},
		{"initrd links to a host file", func(t *testing.T, ro string) { symlink(t, secret, filepath.Join(ro, "boot/initrd.img")) }, "/boot/vmlinuz", "/boot/initrd.img"},
		{"initrd links inside the tree", func(t *testing.T, ro string) { symlink(t, "vmlinuz", filepath.Join(ro, "boot/initrd.img")) }, "/boot/vmlinuz", "/boot/initrd.img"},
		{"boot dir is a link", func(t *testing.T, ro string) {
			if err := os.Rename(filepath.Join(ro, "boot"), filepath.Join(ro, "b")); err != nil {
				t.Fatal(err)
			}
			symlink(t, "b", filepath.Join(ro, "boot"))
		}, "/boot/vmlinuz", "/boot/initrd.img"},
		{"path leaves the tree", func(t *testing.T, ro string) {}, "/boot/../../" + filepath.Base(filepath.Dir(secret)) + "/node.key", ""},
		{"initrd is a fifo", func(t *testing.T, ro string) {
			os.Remove(filepath.Join(ro, "boot/initrd.img"))
			if err := syscall.Mkfifo(filepath.Join(ro, "boot/initrd.img"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "/boot/vmlinuz", "/boot/initrd.img"},
		{"kernel too large", func(t *testing.T, ro string) {
			if err := os.Truncate(filepath.Join(ro, "boot/vmlinuz"), MaxKernelSize+1); err != nil {
				t.Fatal(err)
			}
		}, "/boot/vmlinuz", "/boot/initrd.img"},
		{"initrd too large", func(t *testing.T, ro string) {
			if err := os.Truncate(filepath.Join(ro, "boot/initrd.img"), MaxInitrdSize+1); err != nil {
				t.Fatal(err)
			}
		}, "/boot/vmlinuz", "/boot/initrd.img"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "boot")
			// The previous provision's copies.
			if _, err := CopyBootFiles(tree(t), "/boot/vmlinuz", "/boot/initrd.img", dir); err != nil {
				t.Fatal(err)
			}
			ro := tree(t)
			tt.mod(t, ro)
			b, err := CopyBootFiles(ro, tt.kernel, tt.initrd, dir)
			if !errors.Is(err, ErrBootFile) {
				t.Fatalf("got %+v, %v; want %v", b, err, ErrBootFile)
			}
			for name, want := range map[string]string{"vmlinuz": "kernel v2", "initrd.img": "initrd v2"} {
				if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(got) != want {
					t.Errorf("%s after the refusal: got %q, %v; want %q", name, got, err, want)
				}
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 2 {
				t.Errorf("boot dir holds %d entries, want the 2 copies", len(ents))
			}
		})
	}

	t.Run("copies", func(t *testing.T) {
		ro := tree(t)
		dir := filepath.Join(t.TempDir(), "boot")
		b, err := CopyBootFiles(ro, "/boot/vmlinuz", "/boot/initrd.img", dir)
		if err != nil {
			t.Fatal(err)
		}
		want := Boot{Mode: BootKernel, Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
		if b != want {
			t.Fatalf("got %+v, want %+v", b, want)
		}
		// What the source does afterwards does not reach the copies.
		symlink(t, secret, filepath.Join(ro, "boot/initrd.img"))
		if got, _ := os.ReadFile(b.Initrd); string(got) != "initrd v2" {
			t.Fatalf("initrd copy: got %q", got)
		}
		if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
			t.Fatalf("boot dir: got %v, %v; want mode 0700", st.Mode(), err)
		}
		// A flist without initrd: the old copy goes.
		b, err = CopyBootFiles(tree(t), "/boot/vmlinuz", "", dir)
		if err != nil || b.Initrd != "" {
			t.Fatalf("no initrd: got %+v, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "initrd.img")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old initrd left: %v", err)
		}
	})
}
