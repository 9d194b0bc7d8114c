package loop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

func TestAttachDetach(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "losetup")
	file := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Truncate(file, 64<<20)
	var l Losetup
	dev, err := l.Attach(file)
	if err != nil {
		t.Fatal(err)
	}
	detached := false
	t.Cleanup(func() {
		if !detached {
			l.Detach(dev)
		}
	})
	if !strings.HasPrefix(dev, "/dev/loop") {
		t.Errorf("device %q", dev)
	}
	again, err := l.Attach(file)
	if err != nil || again != dev {
		t.Errorf("attaching twice = %s, %v; want the same device %s", again, err, dev)
	}
	if err := l.Detach(dev); err != nil {
		t.Fatal(err)
	}
	detached = true
	if err := l.Detach(dev); err == nil || !strings.Contains(err.Error(), "detaching "+dev) {
		t.Errorf("detaching twice: got %v, want an error naming the device", err)
	}
	if _, err := l.Attach(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("attaching a missing file: want an error")
	}
}
