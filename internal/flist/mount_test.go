package flist

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// runChroot runs busybox from the mount through a chroot.
func runChroot(t *testing.T, root string, args ...string) string {
	t.Helper()
	cmd := exec.Command("/bin/busybox", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chroot %s %v: %v: %s", root, args, err, out)
	}
	return string(out)
}

func TestRoundTripDir(t *testing.T) {
	src := busyboxTree(t)
	store, err := NewDirStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, m := buildDir(t, src, store)
	mnt := mountMeta(t, m, MountConfig{Store: store})
	compareTrees(t, src, mnt.Dir)
	out := runChroot(t, mnt.Dir, "sh", "-c", "echo hello from $(cat /etc/passwd | head -1 | cut -d: -f1); sha256sum /usr/share/data/random.bin")
	if !strings.HasPrefix(out, "hello from root\n") {
		t.Errorf("chroot output %q", out)
	}
}
