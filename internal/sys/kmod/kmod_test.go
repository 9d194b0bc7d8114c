package kmod

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	if err := Load(filepath.Join(t.TempDir(), "nosuch.ko")); err == nil || !strings.Contains(err.Error(), "nosuch.ko") {
		t.Fatalf("got %v, want an error naming the module", err)
	}
	// Not a module: the kernel refuses it (ENOEXEC), or loading is not
	// permitted here (EPERM, ENOSYS on a kernel without modules).
	p := filepath.Join(t.TempDir(), "junk.ko")
	os.WriteFile(p, []byte("not an ELF file"), 0o644)
	if err := Load(p); err == nil {
		t.Fatal("junk loaded as a module")
	}
}
