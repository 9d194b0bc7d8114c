package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/node/vm/vmtest"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

// newTestManager is a manager over the kit with its VMs deleted in
// t.Cleanup.
func newTestManager(t *testing.T, kit *guestKit, mod func(*Config)) (*Manager, Config) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	cfg := Config{Root: t.TempDir(), Kernel: kit.kernel.Vmlinux, Initrd: kit.initramfs, Accel: qemu.AccelTCG, StopTimeout: 10 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	m, err := New(cfg, HostSystem("", ""), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, n := range m.List() {
			m.Delete(context.Background(), n)
		}
	})
	return m, cfg
}

// waitConsole waits until the VM's console holds want.
func waitConsole(ctx context.Context, t *testing.T, m *Manager, name, want string) {
	t.Helper()
	p, err := m.ConsolePath(name)
	if err != nil {
		t.Fatal(err)
	}
	waitFileHolds(ctx, t, p, want)
}

// waitFileHolds waits until the file at path (a console log) holds want,
// failing the test with the file's content if ctx ends first.
func waitFileHolds(ctx context.Context, t testing.TB, path, want string) {
	t.Helper()
	for !strings.Contains(readFile(path), want) {
		select {
		case <-ctx.Done():
			t.Fatalf("no %q in %s:\n%s", want, path, readFile(path))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// testDiskPersists: a blank disk is formatted btrfs and mounted at /data;
// the VM writes a file, is deleted (power button: well under StopTimeout)
// and run again with the same disk, and reads the file back.
func testDiskPersists(t *testing.T, kit *guestKit) {
	testutil.RequireBinary(t, "mkfs.btrfs")
	m, cfg := newTestManager(t, kit, nil)
	disk := filepath.Join(t.TempDir(), "zmount.raw")
	vmtest.SparseFile(t, disk, 256<<20)
	spec := Spec{Name: "zm", CPUs: 1, MemoryMiB: 256, RootDir: busyboxRoot(t),
		Disks: []Disk{{Path: disk, Mountpoint: "/data"}},
		Guest: guest.Config{Entrypoint: []string{"/bin/sh", "-c",
			"if [ -f /data/f ]; then echo " + marker + " read $(cat /data/f); else echo from-first-boot > /data/f; sync; echo " + marker + " wrote; fi; " +
				"cat /proc/mounts | grep ' /data '; while true; do sleep 1; done"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	for boot, want := range []string{marker + " wrote", marker + " read from-first-boot"} {
		if err := m.Run(ctx, spec); err != nil {
			t.Fatal(err)
		}
		waitConsole(ctx, t, m, "zm", want)
		waitConsole(ctx, t, m, "zm", " /data btrfs ")
		start := time.Now()
		if err := m.Delete(ctx, "zm"); err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		t.Logf("boot %d: delete (power button) took %s", boot, took.Round(time.Millisecond))
		if took > cfg.StopTimeout/2 {
			t.Errorf("boot %d: delete took %s: the guest ignored the power button (stop timeout %s)", boot, took, cfg.StopTimeout)
		}
	}
}

func randomName(t *testing.T, prefix string) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b)
}

// tapState is the ip link line of tap in namespace ns ("" if missing).
func tapState(ns, tap string) string {
	out, err := netns.Run(ns, "", "ip", "-o", "link", "show", "dev", tap)
	if err != nil {
		return ""
	}
	return out
}

// testNetNS: QEMU runs inside Config.NetNS and attaches the tap made
// there (carrier up), none is created on the host; a crash restart and
// an adoption keep it there. The guest pings the tap's address: traffic
// flows after QEMU gave up root (it opened the tap before).
func testNetNS(t *testing.T, kit *guestKit) {
	testutil.RequireBinary(t, "ip")
	ns := randomName(t, "zvt-")
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { netns.Delete(ns) })
	tap := randomName(t, "tv")
	if _, err := netns.Run(ns, "", "ip", "tuntap", "add", "dev", tap, "mode", "tap"); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Run(ns, "", "ip", "link", "set", tap, "up"); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Run(ns, "", "ip", "addr", "add", "10.99.7.1/24", "dev", tap); err != nil {
		t.Fatal(err)
	}
	if st := tapState(ns, tap); !strings.Contains(st, "NO-CARRIER") {
		t.Fatalf("tap before the VM: got %q, want NO-CARRIER", st)
	}
	m, cfg := newTestManager(t, kit, func(c *Config) { c.NetNS = ns })
	spec := Spec{Name: "nsvm", CPUs: 1, MemoryMiB: 256, RootDir: busyboxRoot(t),
		NICs: []qemu.NIC{{ID: "n0", Tap: tap, MAC: "52:54:00:aa:bb:01"}},
		Guest: guest.Config{
			Interfaces: []guest.Interface{{Name: "eth0", MAC: "52:54:00:aa:bb:01", Address: "10.99.7.2/24"}},
			Entrypoint: []string{"/bin/sh", "-c", "/bin/busybox ping -c 1 -W 5 10.99.7.1 && echo " + marker + " ping-ok; while true; do sleep 1; done"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	attached := func(when string) {
		t.Helper()
		if st := tapState(ns, tap); !strings.Contains(st, "LOWER_UP") || strings.Contains(st, "NO-CARRIER") {
			t.Fatalf("%s: tap in %s: got %q, want carrier (QEMU attached)", when, ns, st)
		}
		if st := tapState("", tap); st != "" {
			t.Fatalf("%s: QEMU made tap %s on the host: %q", when, tap, st)
		}
	}
	attached("after run")
	waitConsole(ctx, t, m, "nsvm", marker+" ping-ok")
	checkPause(ctx, t, m, ns, "nsvm", "10.99.7.2")
	info, err := m.Inspect(ctx, "nsvm")
	if err != nil {
		t.Fatal(err)
	}
	qemu.KillPid(info.Pid)
	if !waitGone(ctx, hostPids{}, info.Pid, 10*time.Second) {
		t.Fatal("qemu survived SIGKILL")
	}
	if ev := m.Check(ctx, time.Now()); len(ev) != 1 || !ev[0].Restarted {
		t.Fatalf("got events %+v, want a restart", ev)
	}
	attached("after a crash restart")
	waitConsole(ctx, t, m, "nsvm", marker+" ping-ok")
	m2, err := New(cfg, HostSystem("", ""), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := m2.Adopt(ctx); err != nil || len(got) != 1 {
		t.Fatalf("adopt: got %v, %v", got, err)
	}
	attached("after adoption")
	if err := m2.Delete(ctx, "nsvm"); err != nil {
		t.Fatal(err)
	}
	// The carrier drops once QEMU's tap file is released (asynchronously
	// after its exit).
	var st string
	if testutil.Poll(5*time.Second, func() (bool, error) { st = tapState(ns, tap); return strings.Contains(st, "NO-CARRIER"), nil }) != nil {
		out, _ := exec.Command("sh", "-c", "ps -eo pid,stat,args | grep "+tap+" | grep -v grep").CombinedOutput()
		t.Fatalf("tap after delete: got %q, want NO-CARRIER; processes:\n%s", st, out)
	}
}

// testConsoleFlood: an entrypoint writing to the console as fast as it
// can: Monitor's rotation keeps console.log near LogMax, QEMU keeps
// appending at the end, and the node (QMP, Check) stays responsive.
func testConsoleFlood(t *testing.T, kit *guestKit) {
	const logMax, logKeep = 256 << 10, 128 << 10
	m, _ := newTestManager(t, kit, func(c *Config) {
		c.LogMax, c.LogKeep, c.LogCheck = logMax, logKeep, 100*time.Millisecond
	})
	line := strings.Repeat("0123456789", 10)
	spec := Spec{Name: "flood", CPUs: 1, MemoryMiB: 256, RootDir: busyboxRoot(t),
		Guest: guest.Config{Entrypoint: []string{"/bin/sh", "-c", "echo " + marker + "; while true; do echo " + line + "; done"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	mctx, mcancel := context.WithCancel(ctx)
	monitored := make(chan struct{})
	go func() { defer close(monitored); m.Monitor(mctx, time.Second, nil) }()
	defer func() { mcancel(); <-monitored }()
	p, _ := m.ConsolePath("flood")
	waitConsole(ctx, t, m, "flood", marker)
	var maxSize, cuts int64
	var last int64
	var slowest time.Duration
	end := time.Now().Add(8 * time.Second)
	for time.Now().Before(end) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxSize {
			maxSize = st.Size()
		}
		if st.Size() < last {
			cuts++
		}
		last = st.Size()
		start := time.Now()
		if info, err := m.Inspect(ctx, "flood"); err != nil || info.Status != "running" {
			t.Fatalf("inspect during the flood: got %+v, %v", info, err)
		}
		if d := time.Since(start); d > slowest {
			slowest = d
		}
		// Sampling pace: each round measures the file and an Inspect.
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("console: max %d bytes, %d cuts, slowest inspect %s", maxSize, cuts, slowest.Round(time.Millisecond))
	if cuts == 0 {
		t.Fatalf("the console was never cut (max %d bytes): the flood did not reach %d bytes or rotation is off", maxSize, logMax)
	}
	// Bound: LogMax plus what the guest writes in one check interval
	// (the serial port under tcg writes well under 1 MiB/s).
	if maxSize > 2*logMax {
		t.Fatalf("console reached %d bytes, want at most %d", maxSize, 2*logMax)
	}
	if ev := m.Check(ctx, time.Now()); len(ev) != 0 {
		t.Fatalf("check during the flood: got %+v, want nothing", ev)
	}
	b, _ := os.ReadFile(p)
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		t.Fatalf("console has a NUL at %d of %d: QEMU writes past a hole (no append)", i, len(b))
	}
	if !strings.Contains(string(b[len(b)-300:]), line) {
		t.Fatalf("console tail is not the flood: %q", b[len(b)-300:])
	}
}

// testKernelMode boots the Debian bzImage (as a flist's /boot/vmlinuz)
// with an initrd that mounts the virtiofs root and switches to init=,
// which gets the entrypoint's arguments and prints the marker.
func testKernelMode(t *testing.T, kit *guestKit) {
	m, _ := newTestManager(t, kit, nil)
	initrd := virtiofsRootInitrd(t, kit)
	root := busyboxRoot(t)
	if err := os.WriteFile(filepath.Join(root, "marker-init"), []byte("#!/bin/sh\necho "+marker+" init-args=$1\n/bin/poweroff -f\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "kmode", CPUs: 1, MemoryMiB: 256, RootDir: root,
		Boot:  Boot{Mode: BootKernel, Kernel: kit.kernel.BzImage, Initrd: initrd},
		Guest: guest.Config{Entrypoint: []string{"/marker-init", "first-arg"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	if err := m.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitConsole(ctx, t, m, "kmode", marker+" init-args=first-arg")
	t.Logf("kernel mode: launch to marker %s", time.Since(start).Round(time.Millisecond))
}

// testDiskMode writes a bootable image into a larger disk (WriteImage)
// and boots it in disk mode (SeaBIOS, syslinux, the Debian kernel, an
// initramfs printing the marker).
func testDiskMode(t *testing.T, kit *guestKit) {
	m, _ := newTestManager(t, kit, nil)
	initrd := vmtest.MarkerInitramfs(t, kit.kernel.ModulesDir(), "#!/bin/busybox sh\n/bin/busybox echo "+marker+" disk-mode\n/bin/busybox poweroff -f\n", nil)
	img := filepath.Join(t.TempDir(), "image.raw")
	vmtest.BootableImage(t, kit.kernel.BzImage, initrd, img)
	disk := filepath.Join(t.TempDir(), "vda.raw")
	vmtest.SparseFile(t, disk, 32<<20)
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if err := WriteImage(f, st.Size(), disk); err == nil {
		t.Fatal("a 48 MiB image fits a 32 MiB disk")
	}
	vmtest.SparseFile(t, disk, 64<<20)
	if err := WriteImage(f, st.Size(), disk); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "dmode", CPUs: 1, MemoryMiB: 256, Boot: Boot{Mode: BootDisk}, Disks: []Disk{{Path: disk}}}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	if err := m.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitConsole(ctx, t, m, "dmode", marker+" disk-mode")
	t.Logf("disk mode: launch to marker %s", time.Since(start).Round(time.Millisecond))
}
