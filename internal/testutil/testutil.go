// Package testutil holds the helpers shared by tests of every tier: the
// strict-mode switch that turns a missing prerequisite into a failure,
// checks for root, binaries and devices, polling (Eventually, Poll, and
// Never for what must not happen), the goroutine-leak check (NoLeaks), the
// test logger, free loopback ports, programs started until they listen and
// an in-memory registry of twins' keys.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Strict reports whether ZOS_TEST_STRICT=1 is set: CI sets it so that a test
// whose prerequisites are missing fails instead of skipping.
func Strict() bool { return os.Getenv("ZOS_TEST_STRICT") == "1" }

// Skip skips the test with the reason, or fails it in strict mode.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if Strict() {
		t.Fatalf("prerequisite missing (ZOS_TEST_STRICT=1): %s", reason)
	}
	t.Skip(reason)
}

// RequireRoot skips (or fails in strict mode) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "needs root")
	}
}

// RequireBinary returns the path of an executable on PATH, skipping (or
// failing in strict mode) when it is absent.
func RequireBinary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, "needs "+name+" on PATH (make deps)")
	}
	return p
}

// RequireFile skips (or fails in strict mode) unless path exists.
func RequireFile(t testing.TB, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		Skip(t, "needs "+path)
	}
}

// RequireKernelCache returns the module's .cache/kernel, the Debian kernel
// make deps fetches for the VM tests, skipping (or failing in strict mode)
// when it holds no kernel package.
func RequireKernelCache(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(ModuleRoot(t), ".cache", "kernel")
	if debs, _ := filepath.Glob(filepath.Join(dir, "linux-image-*-amd64_*.deb")); len(debs) == 0 {
		Skip(t, "no Debian kernel in "+dir+" (make deps)")
	}
	return dir
}

// ModuleRoot returns the directory of the go.mod above the test's working
// directory (the package's directory under go test).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for ; dir != "/"; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("no go.mod above the test")
	return ""
}

// Short reports whether heavy tests should be trimmed (go test -short).
func Short() bool { return testing.Short() }

// SkipShort skips the test under go test -short, saying what it would have
// done. Trimming is the caller's choice, not a missing prerequisite, so it
// skips in strict mode too.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: " + what)
	}
}
