package image

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// TestStrip: a Go program built with symbols and DWARF is copied
// stripped and smaller, the copy still runs; a stripped file is used as
// is; a file that is not ELF is a clear error.
func TestStrip(t *testing.T) {
	if _, err := exec.LookPath("strip"); err != nil {
		testutil.Skip(t, "strip (binutils) is not installed")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		testutil.Skip(t, "go is not on PATH (builds a small program with symbols)")
	}
	// A program with symbols and DWARF (go test links its binaries with -s -w).
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module hello\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { println(\"hello\") }\n"), 0o644)
	exe := filepath.Join(t.TempDir(), "hello")
	build := exec.Command(goTool, "build", "-o", exe, ".")
	build.Dir, build.Env = src, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if has, err := hasSymbols(exe); err != nil || !has {
		t.Fatalf("the program built without -s -w has no symbols (%v)", err)
	}
	s := &stripper{ctx: context.Background(), dir: t.TempDir(), log: testutil.Logger(t)}
	got, err := s.strip(exe)
	if err != nil {
		t.Fatal(err)
	}
	if got == exe || len(s.done) != 1 {
		t.Fatalf("got %s (stripped %v), want a stripped copy", got, s.done)
	}
	a, _ := os.Stat(exe)
	b, _ := os.Stat(got)
	if b.Size() >= a.Size() {
		t.Errorf("stripped copy is %d bytes, want less than %d", b.Size(), a.Size())
	}
	if out, err := exec.Command(got).CombinedOutput(); err != nil || string(out) != "hello\n" {
		t.Errorf("the stripped copy does not run: %v\n%s", err, out)
	}
	// Stripped already: nothing to do.
	again, err := s.strip(got)
	if err != nil || again != got {
		t.Errorf("strip of a stripped file: got %s, %v, want %s unchanged", again, err, got)
	}
	bad := filepath.Join(t.TempDir(), "zos")
	os.WriteFile(bad, []byte("#!/bin/false\n"), 0o755)
	if _, err := s.strip(bad); err == nil {
		t.Error("strip of a file that is not ELF: got no error")
	}
}
