package wg

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/cpio"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/testutil"
)

// TestGuestKernelWireGuard runs TestRootStartPicksKernelOrWireguardGo in a
// tcg guest of the boot image's kernel with the wireguard module loaded (as
// the boot image loads it), since the build host's kernel has no
// WireGuard: there Start must give kernel devices, created in the sockets'
// namespace, moved, configured over genetlink, listening once up, and
// removed on Close. About 10 s. With ZOS_WG_GUEST_BENCH=1 the guest (2
// vCPUs) also runs BenchmarkTCP with kernel WireGuard and with wireguard-go
// and the test logs the figures (scripts/bench/network.sh).
func TestGuestKernelWireGuard(t *testing.T) {
	testutil.SkipShort(t, "boots a tcg guest")
	dir := testutil.RequireKernelCache(t)
	qemuBin := testutil.RequireBinary(t, "qemu-system-x86_64")
	bb := testutil.RequireBinary(t, "busybox")
	k, err := kernel.Find(context.Background(), dir, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	// This package's tests, static, for the guest's initramfs.
	bin := filepath.Join(tmp, "wg.test")
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = testutil.RequireBinary(t, "/usr/local/go/bin/go")
	}
	build := exec.Command(goBin, "test", "-c", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test binary: %v: %s", err, out)
	}
	ix, err := kernel.ReadIndex(k.ModulesDir())
	if err != nil {
		t.Fatal(err)
	}
	order, missing := ix.Resolve([]string{"wireguard", "tun", "veth"})
	if len(missing) > 0 {
		t.Fatalf("modules missing: %v", missing)
	}
	const bbx = "/bin/busybox "
	script := "#!/bin/busybox sh\n" +
		bbx + "mount -t proc proc /proc\n" + bbx + "mount -t sysfs sys /sys\n" + bbx + "mount -t devtmpfs dev /dev\n" +
		bbx + "mount -t tmpfs run /run\n" + bbx + "mount -t tmpfs tmp /tmp\n"
	a := cpio.NewArchive()
	errs := []error{a.HostFile("/bin/busybox", 0o755, bb), a.HostFile("/bin/wg.test", 0o755, bin), a.Symlink("/var/run", "../run")}
	for _, d := range []string{"/proc", "/sys", "/dev", "/run", "/tmp", "/var"} {
		errs = append(errs, a.Dir(d, 0o755))
	}
	for _, m := range order {
		p := "/lib/modules/" + m.Path
		errs = append(errs, a.HostFile(p, 0o644, filepath.Join(k.ModulesDir(), m.Path)))
		script += bbx + "insmod " + p + "\n"
	}
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	script += bbx + "mkdir -p /dev/net\n[ -e /dev/net/tun ] || " + bbx + "mknod /dev/net/tun c 10 200\n" +
		bbx + "ip link set lo up\ncd /tmp\n" +
		"/bin/wg.test -test.v -test.count=1 -test.run '^TestRootStartPicksKernelOrWireguardGo$' 2>&1\n" +
		bbx + "echo guest-test-exit $?\n"
	bench := os.Getenv("ZOS_WG_GUEST_BENCH") == "1"
	if bench {
		// Kernel and wireguard-go in the same guest, each against the
		// guest's veth.
		for _, mode := range []string{"kernel", "userspace"} {
			script += "ZOS_WG_MODE=" + mode + " /bin/wg.test -test.v -test.run '^$' -test.bench BenchmarkTCP -test.benchtime 3x 2>&1\n"
		}
	}
	script += bbx + "poweroff -f\n"
	if err := a.File("/init", 0o755, []byte(script)); err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(tmp, "initrd.cpio")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	werr := a.WriteTo(f, os.ReadFile)
	if cerr := f.Close(); werr != nil || cerr != nil {
		t.Fatalf("writing initramfs: %v %v", werr, cerr)
	}
	timeout, cpus := 90*time.Second, "1"
	if bench {
		timeout, cpus = 5*time.Minute, "2"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, qemuBin, "-M", "microvm", "-accel", "tcg", "-m", "512", "-smp", cpus,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
		"-kernel", k.Vmlinux, "-initrd", initrd,
		"-append", "console=ttyS0 quiet tsc_early_khz=2600000 panic=-1").CombinedOutput()
	if err != nil {
		t.Fatalf("guest: %v\n%s", err, out)
	}
	for _, want := range []string{"this kernel: kernel", "--- PASS: TestRootStartPicksKernelOrWireguardGo", "guest-test-exit 0"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("guest output lacks %q:\n%s", want, out)
		}
	}
	if bench {
		t.Logf("guest:\n%s", out)
		if strings.Contains(string(out), "--- FAIL") {
			t.Errorf("a benchmark failed in the guest")
		}
	}
}
