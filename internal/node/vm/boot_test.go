package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/cpio"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

// Marker is what the test entrypoints print.
const marker = "ZOS-VM-MARKER-7f3a"

// guestKit is a kernel, vminit and a guest initramfs built once per test.
type guestKit struct {
	kernel    *kernel.Kernel
	initramfs string
	vminit    string
	modules   []string
}

func newGuestKit(t testing.TB) *guestKit {
	t.Helper()
	testutil.RequireBinary(t, qemu.DefaultBinary)
	cache := testutil.RequireKernelCache(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := kernel.Fetch(ctx, cache, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vminit := filepath.Join(dir, "vminit")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", vminit, "github.com/zos-go/zos/cmd/vminit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building vminit: %v\n%s", err, out)
	}
	initrd := filepath.Join(dir, "initrd.cpio")
	res, err := WriteInitramfs(InitramfsConfig{Vminit: vminit, ModulesDir: k.ModulesDir()}, initrd)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Missing) > 0 {
		t.Fatalf("guest modules missing from the kernel: %v", res.Missing)
	}
	return &guestKit{kernel: k, initramfs: initrd, vminit: vminit, modules: res.Modules}
}

// TestGuest builds the kit once (vminit, initramfs) for its subtests.
func TestGuest(t *testing.T) {
	kit := newGuestKit(t)
	t.Run("initramfs", func(t *testing.T) { testInitramfs(t, kit) })
	t.Run("vminit_boot", func(t *testing.T) { testVminitBoot(t, kit) })
	t.Run("bad_entrypoint", func(t *testing.T) { testBadEntrypoint(t, kit) })
	t.Run("9p_root", func(t *testing.T) { test9PRoot(t, kit) })
	t.Run("bare_boot", func(t *testing.T) { testBareBoot(t, kit) })
	t.Run("manager", func(t *testing.T) { testManager(t, kit) })
	t.Run("crash_restart", func(t *testing.T) { testCrashRestart(t, kit) })
	t.Run("canary", func(t *testing.T) { testCanary(t, kit) })
	t.Run("disk_persists", func(t *testing.T) { testDiskPersists(t, kit) })
	t.Run("netns", func(t *testing.T) { testNetNS(t, kit) })
	t.Run("console_flood", func(t *testing.T) { testConsoleFlood(t, kit) })
	t.Run("kernel_mode", func(t *testing.T) { testKernelMode(t, kit) })
	t.Run("disk_mode", func(t *testing.T) { testDiskMode(t, kit) })
	t.Run("kernel_boot_files", func(t *testing.T) { testKernelBootFiles(t, kit) })
	t.Run("sandbox", func(t *testing.T) { testSandbox(t, kit) })
}

// testCanary: the canary boot passes under tcg, and accel auto picks tcg
// here (KVM is absent, or it is the nested kind that hangs: bounded).
func testCanary(t *testing.T, kit *guestKit) {
	log := testutil.Logger(t)
	canary := Canary("", kit.kernel.Vmlinux, kit.initramfs, log)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := canary(ctx, qemu.AccelTCG); err != nil {
		t.Fatalf("tcg canary: %v", err)
	}
	start := time.Now()
	accel, err := qemu.ResolveAccel(ctx, "auto", canary, 8*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accel auto: %s in %s", accel, time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat("/dev/kvm"); err != nil && accel != qemu.AccelTCG {
		t.Fatalf("got %s without /dev/kvm, want tcg", accel)
	}
}

func testInitramfs(t *testing.T, kit *guestKit) {
	f, err := os.Open(kit.initramfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := cpio.ReadArchive(f)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		have[e.Path] = true
	}
	for _, p := range append([]string{"/init", "/dev/console", guest.ModulesFile, "/newroot"}, kit.modules...) {
		if !have[p] {
			t.Errorf("initramfs lacks %s", p)
		}
	}
	pos := map[string]int{}
	for i, m := range kit.modules {
		pos[strings.TrimSuffix(filepath.Base(m), ".ko")] = i
	}
	for _, dep := range [][2]string{{"virtio", "virtio_mmio"}, {"virtio_ring", "virtio"}, {"fuse", "virtiofs"}, {"9pnet", "9pnet_virtio"}} {
		if a, ok := pos[dep[0]]; ok && a > pos[dep[1]] {
			t.Errorf("module %s loads after %s", dep[0], dep[1])
		}
	}
	// The disk group: btrfs and ext4 after every module depmod says they
	// need (depmod -n prints modules.dep without writing it).
	if depmod, err := exec.LookPath("depmod"); err == nil {
		out, err := exec.Command(depmod, "-n", "-b", kit.kernel.Root, kit.kernel.Version).Output()
		if err != nil {
			t.Fatalf("depmod: %v", err)
		}
		deps := map[string][]string{}
		for _, l := range strings.Split(string(out), "\n") {
			mod, rest, ok := strings.Cut(l, ":")
			if ok && strings.HasSuffix(mod, ".ko") {
				deps[mod] = strings.Fields(rest)
			}
		}
		at := map[string]int{}
		for i, m := range kit.modules {
			at[strings.TrimPrefix(m, "/lib/modules/")] = i
		}
		for _, fs := range []string{"kernel/fs/btrfs/btrfs.ko", "kernel/fs/ext4/ext4.ko"} {
			i, ok := at[fs]
			if !ok {
				t.Errorf("initramfs lacks %s", fs)
				continue
			}
			if len(deps[fs]) == 0 {
				t.Errorf("depmod lists no dependencies for %s", fs)
			}
			for _, d := range deps[fs] {
				if j, ok := at[d]; !ok || j > i {
					t.Errorf("%s needs %s (modules.dep): in the initramfs %v, before it %v", fs, d, ok, j < i)
				}
			}
		}
		list, _ := os.ReadFile(kit.initramfs)
		if !bytes.Contains(list, []byte("btrfs.ko "+guest.GroupDisk)) {
			t.Error("btrfs is not in the disk group of the module list")
		}
	}
	var again bytes.Buffer
	if _, err := BuildInitramfs(InitramfsConfig{Vminit: kit.vminit, ModulesDir: kit.kernel.ModulesDir()}, &again); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(kit.initramfs)
	if !bytes.Equal(first, again.Bytes()) {
		t.Error("initramfs is not deterministic")
	}
}

// busyboxRoot makes a root file system with only busybox (static) and
// its applet links.
func busyboxRoot(t testing.TB) string {
	t.Helper()
	bb := testutil.RequireBinary(t, "busybox")
	if out, err := exec.Command("file", "-L", bb).Output(); err == nil && !bytes.Contains(out, []byte("statically linked")) {
		testutil.Skip(t, bb+" is not static (install busybox-static)")
	}
	root := t.TempDir()
	for _, d := range []string{"bin", "etc", "root", "tmp", "proc", "sys", "dev", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "cat", "echo", "mount", "ls", "hostname", "sleep", "sync", "poweroff"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// bootResult is a finished boot.
type bootResult struct {
	console  string
	toMarker time.Duration
}

// boot runs QEMU until it exits (guest power-off) or timeout, and reports
// the time from QEMU's start to marker on the console. QEMU and the
// virtiofsds are killed in t.Cleanup whatever happens.
func boot(t testing.TB, vmc qemu.VM, shares map[string]string, timeout time.Duration) bootResult {
	t.Helper()
	log := testutil.Logger(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dir := t.TempDir()
	vmc.Console = filepath.Join(dir, "console.log")
	vmc.QMP = filepath.Join(dir, "qmp.sock")
	for i, tag := range sortedKeys(shares) {
		sock := filepath.Join(dir, fmt.Sprintf("fs%d.sock", i))
		fsd, err := qemu.StartVirtiofsd(ctx, "", sock, shares[tag], log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fsd.Kill)
		vmc.FS = append(vmc.FS, qemu.FS{ID: fmt.Sprintf("fs%d", i), Tag: tag, Socket: sock})
	}
	start := time.Now()
	p, err := qemu.Start("", vmc, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	var res bootResult
	for {
		b, _ := os.ReadFile(vmc.Console)
		res.console = string(b)
		if res.toMarker == 0 && strings.Contains(res.console, marker) {
			res.toMarker = time.Since(start)
		}
		select {
		case <-p.Done():
			b, _ := os.ReadFile(vmc.Console)
			res.console = string(b)
			if res.toMarker == 0 && strings.Contains(res.console, marker) {
				res.toMarker = time.Since(start)
			}
			return res
		case <-ctx.Done():
			p.Kill()
			t.Fatalf("the VM did not power off within %s; console:\n%s", timeout, res.console)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// debugCmdline is appended to the guest command line from ZOS_VM_CMDLINE
// (e.g. "loglevel=7 printk.time=1" to see the kernel's timing; set
// ZOS_VM_CONSOLE=1 to log the console of the vminit boot).
func debugCmdline() string {
	if s := os.Getenv("ZOS_VM_CMDLINE"); s != "" {
		return " " + s
	}
	return ""
}

// containerVM is the VM of a container-mode boot of root with cfg.
func (kit *guestKit) containerVM(t testing.TB, cfg guest.Config) qemu.VM {
	t.Helper()
	enc, err := cfg.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return qemu.VM{
		Name: "t", Accel: qemu.AccelTCG, CPUs: 1, MemoryMiB: 256,
		Kernel: kit.kernel.Vmlinux, Initrd: kit.initramfs,
		Cmdline: "quiet panic=-1 root=vroot rootfstype=virtiofs " + guest.ParamConfig + "=" + enc + debugCmdline(),
	}
}

// testVminitBoot boots a busybox root shared by virtiofs with vminit: the
// entrypoint prints the marker, sees its env and the extra share, and the
// VM powers off when it ends.
func testVminitBoot(t *testing.T, kit *guestKit) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	root := busyboxRoot(t)
	vol := t.TempDir()
	cfg := guest.Config{
		Hostname:   "vm-test",
		Entrypoint: []string{"/bin/sh", "-c", "echo " + marker + " $GREETING $(hostname); echo from-guest > /data/hello"},
		Env:        map[string]string{"GREETING": "hello-env", "SSH_KEY": "ssh-ed25519 AAAATEST test@zos"},
		Mounts:     []guest.Mount{{Tag: "vol1", Mountpoint: "/data"}},
	}
	res := boot(t, kit.containerVM(t, cfg), map[string]string{"vroot": root, "vol1": vol}, 60*time.Second)
	if res.toMarker == 0 {
		t.Fatalf("no marker on the console:\n%s", res.console)
	}
	if !strings.Contains(res.console, marker+" hello-env vm-test") {
		t.Errorf("entrypoint output lacks env and hostname; console:\n%s", res.console)
	}
	if !strings.Contains(res.console, "msg=poweroff") {
		t.Errorf("the VM ended without vminit's poweroff; console:\n%s", res.console)
	}
	if b, err := os.ReadFile(filepath.Join(vol, "hello")); err != nil || string(b) != "from-guest\n" {
		t.Errorf("extra share: got %q, %v; want from-guest", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "root", ".ssh", "authorized_keys")); err != nil || !strings.Contains(string(b), "AAAATEST") {
		t.Errorf("authorized_keys: got %q, %v", b, err)
	}
	t.Logf("launch to marker: %s", res.toMarker.Round(time.Millisecond))
	if os.Getenv("ZOS_VM_CONSOLE") != "" {
		t.Logf("console:\n%s", res.console)
	}
}

// testBadEntrypoint: an entrypoint that does not exist gives a
// clear error on the console and a powered-off VM, not a hang.
func testBadEntrypoint(t *testing.T, kit *guestKit) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	root := busyboxRoot(t)
	cfg := guest.Config{Entrypoint: []string{"/no/such/entrypoint"}}
	res := boot(t, kit.containerVM(t, cfg), map[string]string{"vroot": root}, 60*time.Second)
	if !strings.Contains(res.console, "starting entrypoint") || !strings.Contains(res.console, "no such file") {
		t.Fatalf("console lacks the entrypoint error:\n%s", res.console)
	}
}

// bareInitramfs is the guest initramfs with busybox and a /bare-init
// script appended (the kernel reads concatenated archives): the same
// kernel and initramfs without vminit's work, for the ratio benchmark.
func (kit *guestKit) bareInitramfs(t testing.TB) string {
	t.Helper()
	bb := testutil.RequireBinary(t, "busybox")
	base, err := os.ReadFile(kit.initramfs)
	if err != nil {
		t.Fatal(err)
	}
	a := cpio.NewArchive()
	script := "#!/bin/busybox sh\n/bin/busybox echo " + marker + "\n/bin/busybox poweroff -f\n"
	if err := a.HostFile("/bin/busybox", 0o755, bb); err != nil {
		t.Fatal(err)
	}
	if err := a.File("/bare-init", 0o755, []byte(script)); err != nil {
		t.Fatal(err)
	}
	buf := bytes.NewBuffer(base)
	if err := a.WriteTo(buf, os.ReadFile); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "bare.cpio")
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// bareVM boots the bare initramfs: no modules, no shares.
func (kit *guestKit) bareVM(initrd string) qemu.VM {
	return qemu.VM{
		Name: "bare", Accel: qemu.AccelTCG, CPUs: 1, MemoryMiB: 256,
		Kernel: kit.kernel.Vmlinux, Initrd: initrd, Cmdline: "quiet panic=-1 rdinit=/bare-init" + debugCmdline(),
	}
}

func testBareBoot(t *testing.T, kit *guestKit) {
	res := boot(t, kit.bareVM(kit.bareInitramfs(t)), nil, 60*time.Second)
	if res.toMarker == 0 {
		t.Fatalf("no marker on the console:\n%s", res.console)
	}
	t.Logf("bare launch to marker: %s", res.toMarker.Round(time.Millisecond))
}

// BenchmarkBoot measures QEMU launch to the entrypoint's marker for a
// container-mode boot (vminit, virtiofs root) and for a bare boot of the
// same kernel and initramfs; scripts/bench/vm.sh prints the ratio.
func BenchmarkBoot(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFile(b, qemu.DefaultVirtiofsd)
	kit := newGuestKit(b)
	root := busyboxRoot(b)
	bare := kit.bareInitramfs(b)
	cfg := guest.Config{Entrypoint: []string{"/bin/busybox", "echo", marker}}
	cases := []struct {
		name   string
		vm     qemu.VM
		shares map[string]string
	}{
		{"vminit", kit.containerVM(b, cfg), map[string]string{"vroot": root}},
		{"bare", kit.bareVM(bare), nil},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				res := boot(b, c.vm, c.shares, 60*time.Second)
				if res.toMarker == 0 {
					b.Fatalf("no marker on the console:\n%s", res.console)
				}
				total += res.toMarker
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/marker")
		})
	}
}

// test9PRoot boots the root over 9p (the fallback of hosts without
// virtiofsd): vminit loads the 9p modules only then.
func test9PRoot(t *testing.T, kit *guestKit) {
	testutil.RequireRoot(t)
	root := busyboxRoot(t)
	vm := kit.containerVM(t, guest.Config{Entrypoint: []string{"/bin/sh", "-c", "echo " + marker + " $(cat /proc/mounts | grep ' / ')"}})
	vm.Cmdline = strings.Replace(vm.Cmdline, "rootfstype=virtiofs", "rootfstype=9p", 1)
	vm.P9 = []qemu.P9{{ID: "p0", Tag: "vroot", Path: root}}
	res := boot(t, vm, nil, 60*time.Second)
	if !strings.Contains(res.console, marker+" vroot / 9p") {
		t.Fatalf("no marker with a 9p root on the console:\n%s", res.console)
	}
}

// testManager runs a long-lived VM through the Manager, re-adopts it from
// a second Manager (a node restart) without rebooting it, and deletes it.
func testManager(t *testing.T, kit *guestKit) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	log := testutil.Logger(t)
	cfg := Config{Root: t.TempDir(), Kernel: kit.kernel.Vmlinux, Initrd: kit.initramfs, Accel: qemu.AccelTCG, StopTimeout: time.Second}
	m1, err := New(cfg, HostSystem("", ""), log)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Name: "vm1", CPUs: 1, MemoryMiB: 256, RootDir: busyboxRoot(t),
		Shares: []Share{{Dir: t.TempDir(), Mountpoint: "/data"}},
		Guest:  guest.Config{Entrypoint: []string{"/bin/sh", "-c", "echo " + marker + "; while true; do sleep 1; done"}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := m1.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m1.Delete(context.Background(), "vm1") })
	if err := m1.Run(ctx, spec); !errors.Is(err, ErrExists) {
		t.Fatalf("second run: got %v, want ErrExists", err)
	}
	info, err := m1.Inspect(ctx, "vm1")
	if err != nil {
		t.Fatal(err)
	}
	waitFileHolds(ctx, t, info.Console, marker)
	if info.Status != "running" {
		t.Fatalf("got status %q, want running", info.Status)
	}
	st, _ := readState(t, cfg.Root, "vm1")

	// A node restart: a new manager adopts the running VM.
	m2, err := New(cfg, HostSystem("", ""), log)
	if err != nil {
		t.Fatal(err)
	}
	adopted, err := m2.Adopt(ctx)
	if err != nil || len(adopted) != 1 || adopted[0] != "vm1" {
		t.Fatalf("adopt: got %v, %v; want [vm1]", adopted, err)
	}
	info2, err := m2.Inspect(ctx, "vm1")
	if err != nil || info2.Pid != info.Pid || info2.Status != "running" {
		t.Fatalf("adopted: got %+v, %v; want pid %d running", info2, err, info.Pid)
	}
	if err := m2.Pause(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if info, err := m2.Inspect(ctx, "vm1"); err != nil || info.Status != "paused" {
		t.Fatalf("after pause: got %+v, %v; want paused", info, err)
	}
	if err := m2.Resume(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	if info, err := m2.Inspect(ctx, "vm1"); err != nil || info.Status != "running" {
		t.Fatalf("after resume: got %+v, %v; want running", info, err)
	}
	if n := strings.Count(readFile(info.Console), marker); n != 1 {
		t.Fatalf("the VM rebooted on adoption (%d boots)", n)
	}
	if err := m2.Delete(ctx, "vm1"); err != nil {
		t.Fatal(err)
	}
	for _, pid := range append([]int{st.QEMU}, st.Virtiofsd...) {
		if (hostPids{}).Live(pid) {
			t.Errorf("pid %d still alive after delete", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, "vm1")); !os.IsNotExist(err) {
		t.Errorf("vm dir left after delete: %v", err)
	}
	if _, err := m2.Inspect(ctx, "vm1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("inspect after delete: got %v, want ErrNotFound", err)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

func readState(t *testing.T, root, name string) (state, error) {
	t.Helper()
	var st state
	if err := readJSON(filepath.Join(root, name, "state.json"), &st); err != nil {
		t.Fatal(err)
	}
	if st.QEMU == 0 || len(st.Virtiofsd) != 2 {
		t.Fatalf("got state %+v, want a qemu pid and 2 virtiofsd pids", st)
	}
	return st, nil
}

// testCrashRestart kills QEMU: Check restarts the VM (it boots again to
// its marker); the fifth crash within the window decommissions it.
func testCrashRestart(t *testing.T, kit *guestKit) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	log := testutil.Logger(t)
	cfg := Config{Root: t.TempDir(), Kernel: kit.kernel.Vmlinux, Initrd: kit.initramfs, Accel: qemu.AccelTCG, StopTimeout: time.Second}
	m, err := New(cfg, HostSystem("", ""), log)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "crashy", CPUs: 1, MemoryMiB: 256, RootDir: busyboxRoot(t),
		Guest: guest.Config{Entrypoint: []string{"/bin/sh", "-c", "echo " + marker + "; while true; do sleep 1; done"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := m.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Delete(context.Background(), "crashy") })
	now := time.Now()
	if ev := m.Check(ctx, now); len(ev) != 0 {
		t.Fatalf("a healthy VM: got events %+v, want none", ev)
	}
	for crash := 1; crash <= MaxCrashes+1; crash++ {
		info, err := m.Inspect(ctx, "crashy")
		if err != nil {
			t.Fatal(err)
		}
		if crash == 2 { // one full boot after a restart
			waitFileHolds(ctx, t, info.Console, marker) // the restarted VM boots again
		}
		victim := info.Pid
		if crash == 3 {
			// A dead virtiofsd (the root's) is a crash too.
			var st state
			if err := readJSON(filepath.Join(cfg.Root, "crashy", "state.json"), &st); err != nil || len(st.Virtiofsd) == 0 {
				t.Fatalf("state: %+v %v", st, err)
			}
			victim = st.Virtiofsd[0]
		}
		syscall.Kill(victim, syscall.SIGKILL)
		if !waitGone(ctx, hostPids{}, victim, 10*time.Second) {
			t.Fatalf("process %d survived SIGKILL", victim)
		}
		now = now.Add(time.Second)
		ev := m.Check(ctx, now)
		if len(ev) != 1 {
			t.Fatalf("crash %d: got events %+v, want one", crash, ev)
		}
		if crash <= MaxCrashes {
			if !ev[0].Restarted || ev[0].Err != nil {
				t.Fatalf("crash %d: got %+v, want a restart", crash, ev[0])
			}
			continue
		}
		if !errors.Is(ev[0].Err, ErrDecommissioned) {
			t.Fatalf("crash %d: got %+v, want decommissioned", crash, ev[0])
		}
	}
	if len(m.List()) != 0 {
		t.Fatalf("got vms %v after decommission, want none", m.List())
	}
	if _, err := os.Stat(filepath.Join(cfg.Root, "crashy")); !os.IsNotExist(err) {
		t.Fatalf("vm dir left after decommission: %v", err)
	}
}

// BenchmarkQEMUMemory reports QEMU's memory beyond guest RAM for a booted
// container-mode VM (256 MiB guest): guest RAM is the memfd, counted in
// RssShmem; QEMU's own memory is RssAnon + RssFile.
func BenchmarkQEMUMemory(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFile(b, qemu.DefaultVirtiofsd)
	kit := newGuestKit(b)
	root := busyboxRoot(b)
	log := testutil.Logger(b)
	m, err := New(Config{Root: b.TempDir(), Kernel: kit.kernel.Vmlinux, Initrd: kit.initramfs, Accel: qemu.AccelTCG, StopTimeout: time.Second}, HostSystem("", ""), log)
	if err != nil {
		b.Fatal(err)
	}
	var own, shmem float64
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("mem%d", i)
		spec := Spec{Name: name, CPUs: 1, MemoryMiB: 256, RootDir: root,
			Guest: guest.Config{Entrypoint: []string{"/bin/sh", "-c", "echo " + marker + "; while true; do sleep 1; done"}}}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if err := m.Run(ctx, spec); err != nil {
			cancel()
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Delete(context.Background(), name) })
		info, err := m.Inspect(ctx, name)
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		waitFileHolds(ctx, b, info.Console, marker)
		cancel()
		st := readFile(fmt.Sprintf("/proc/%d/status", info.Pid))
		own += float64(statusKB(st, "RssAnon:")+statusKB(st, "RssFile:")) / 1024
		shmem += float64(statusKB(st, "RssShmem:")) / 1024
		m.Delete(context.Background(), name)
	}
	b.ReportMetric(own/float64(b.N), "MiB-qemu-own")
	b.ReportMetric(shmem/float64(b.N), "MiB-guest-touched")
}

// statusKB reads a "Key:   123 kB" line of /proc/PID/status.
func statusKB(status, key string) int {
	for _, l := range strings.Split(status, "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == key {
			var n int
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	return 0
}
