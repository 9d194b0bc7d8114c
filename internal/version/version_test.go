package version

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// TestStampTarget checks that the -X target the Makefile uses exists, by
// linking a binary with it and reading the result back.
func TestStampTarget(t *testing.T) {
	testutil.SkipShort(t, "builds a binary")
	out := filepath.Join(t.TempDir(), "zosctl")
	cmd := exec.Command("go", "build", "-ldflags", "-X github.com/zos-go/zos/internal/version.Version=stamp-test", "-o", out, "github.com/zos-go/zos/cmd/zosctl")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, b)
	}
	b, err := exec.Command(out, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("zosctl version: %v\n%s", err, b)
	}
	if got := strings.TrimSpace(string(b)); got != "stamp-test" {
		t.Fatalf("got version %q, want %q", got, "stamp-test")
	}
}
