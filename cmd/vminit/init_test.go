package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func TestWriteSSHKey(t *testing.T) {
	root := t.TempDir()
	if err := writeSSHKey(root, "ssh-ed25519 AAAA a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "root")); !os.IsNotExist(err) {
		t.Fatal("created /root in an image without one")
	}
	if err := os.Mkdir(filepath.Join(root, "root"), 0o700); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "root", ".ssh", "authorized_keys")
	for _, k := range []string{"ssh-ed25519 AAAA a", "ssh-ed25519 AAAA a\n", "ssh-ed25519 BBBB b"} {
		if err := writeSSHKey(root, k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "ssh-ed25519 AAAA a\nssh-ed25519 BBBB b\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
		t.Fatalf("got mode %v, want 0600", st.Mode().Perm())
	}
}

func TestLoadModulesGroups(t *testing.T) {
	log := testutil.Logger(t)
	list := filepath.Join(t.TempDir(), "modules")
	if err := os.WriteFile(list, []byte("# comment\n\n/nonexistent/a.ko 9p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The default group has nothing to load: no error.
	if err := loadModules(list, "", log); err != nil {
		t.Fatalf("default group: %v", err)
	}
	// The 9p group names a missing file: a clear error.
	if err := loadModules(list, "9p", log); err == nil || !strings.Contains(err.Error(), "a.ko") {
		t.Fatalf("9p group: got %v, want an error about a.ko", err)
	}
	// No list at all: a kernel with built-in drivers.
	if err := loadModules(filepath.Join(t.TempDir(), "none"), "", log); err != nil {
		t.Fatalf("missing list: %v", err)
	}
}

func TestFindDisk(t *testing.T) {
	sys := t.TempDir()
	for dev, serial := range map[string]string{"vda": "d1\n", "vdb": "d0", "sda": "d2"} {
		if err := os.MkdirAll(filepath.Join(sys, dev), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, dev, "serial"), []byte(serial), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for serial, want := range map[string]string{"d0": "vdb", "d1": "vda", "d2": "", "d9": ""} {
		if got := findDisk(sys, serial); got != want {
			t.Errorf("findDisk(%s): got %q, want %q", serial, got, want)
		}
	}
}
