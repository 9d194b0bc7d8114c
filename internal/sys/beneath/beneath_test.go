package beneath

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOpenRegular: a tree with every way out a tenant could build into a
// flist: links to the host (absolute, relative, on a directory of the
// path), "..", a FIFO, a directory. Only the plain files open.
func TestOpenRegular(t *testing.T) {
	host := t.TempDir()
	secret := filepath.Join(host, "node.key")
	if err := os.WriteFile(secret, []byte("node secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	mk := func(p, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	mk("boot/vmlinuz", "kernel")
	mk("real/initrd.img", "initrd")
	link(secret, "boot/abs-link")
	link("../../"+filepath.Base(host)+"/node.key", "boot/rel-link")
	link("vmlinuz", "boot/inside-link") // inside the tree, still refused
	link(host, "hostdir")
	link("real", "linkdir")
	if err := syscall.Mkfifo(filepath.Join(root, "boot", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want error // nil: opens and reads data
		data string
	}{
		{"/boot/vmlinuz", nil, "kernel"},
		{"real/initrd.img", nil, "initrd"},
		{"/boot/abs-link", ErrLink, ""},
		{"/boot/rel-link", ErrLink, ""},
		{"/boot/inside-link", ErrLink, ""},
		{"/hostdir/node.key", ErrLink, ""},
		{"/linkdir/initrd.img", ErrLink, ""},
		{"/boot/../../" + filepath.Base(host) + "/node.key", ErrOutside, ""},
		{"/boot/fifo", ErrNotRegular, ""},
		{"/boot", ErrNotRegular, ""},
		{"/", ErrNotRegular, ""},
		{"/boot/none", os.ErrNotExist, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := OpenRegular(root, tt.name)
			if tt.want != nil {
				if f != nil {
					f.Close()
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil || string(b) != tt.data {
				t.Fatalf("got %q, %v; want %q", b, err, tt.data)
			}
		})
	}
}
