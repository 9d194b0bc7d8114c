package image_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/zos-go/zos/internal/cli"
	"github.com/zos-go/zos/internal/cpio"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/image"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

func goBuild(t testing.TB, dir string, pkgs ...string) {
	t.Helper()
	cmd := exec.Command("go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// vmConfig is one QEMU boot of the image.
type vmConfig struct {
	Kernel, Initrd, Cmdline string
	Disks                   []string // first one fast (SSD-like), the others throttled (HDD-like)
	Monitor                 string   // HMP unix socket
	HostFwd                 [][2]int // host port -> guest port
	MemMiB                  int
}

// qemuArgs is the ordered argv of a boot: microvm, PVH vmlinux, virtio-mmio
// disks and NIC, user networking (DHCP, host at 10.0.2.2).
func qemuArgs(c vmConfig) []string {
	args := []string{"-M", "microvm,rtc=on", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", strconv.Itoa(c.MemMiB),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
		"-monitor", "unix:" + c.Monitor + ",server,nowait",
		"-kernel", c.Kernel, "-initrd", c.Initrd, "-append", c.Cmdline}
	for i, d := range c.Disks {
		drive := fmt.Sprintf("id=d%d,file=%s,format=raw,if=none,cache=unsafe", i, d)
		if i > 0 {
			// A throttled disk measures as rotational (seek time).
			drive += ",throttling.iops-total=200"
		}
		args = append(args, "-drive", drive, "-device", fmt.Sprintf("virtio-blk-device,drive=d%d", i))
	}
	netdev := "user,id=n0"
	for _, f := range c.HostFwd {
		netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f[0], f[1])
	}
	return append(args, "-netdev", netdev, "-device", "virtio-net-device,netdev=n0")
}

func TestQEMUArgs(t *testing.T) {
	got := strings.Join(qemuArgs(vmConfig{Kernel: "/k", Initrd: "/i", Cmdline: "farm=1", Disks: []string{"/a", "/b"},
		Monitor: "/m", HostFwd: [][2]int{{1234, 9900}}, MemMiB: 1536}), " ")
	want := "-M microvm,rtc=on -accel tcg -cpu max -smp 2 -m 1536 -nodefaults -no-user-config -nographic -no-reboot " +
		"-serial stdio -monitor unix:/m,server,nowait -kernel /k -initrd /i -append farm=1 " +
		"-drive id=d0,file=/a,format=raw,if=none,cache=unsafe -device virtio-blk-device,drive=d0 " +
		"-drive id=d1,file=/b,format=raw,if=none,cache=unsafe,throttling.iops-total=200 -device virtio-blk-device,drive=d1 " +
		"-netdev user,id=n0,hostfwd=tcp:127.0.0.1:1234-:9900 -device virtio-net-device,netdev=n0"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// vm is a running QEMU.
type vm struct {
	cmd     *exec.Cmd
	out     *testutil.Buffer
	done    chan struct{}
	monitor string
	started time.Time
}

func bootVM(t *testing.T, c vmConfig, timeout time.Duration) *vm {
	t.Helper()
	return bootArgs(t, qemuArgs(c), c.Monitor, timeout)
}

// bootArgs starts QEMU with args, whose HMP monitor is at monitor.
func bootArgs(t *testing.T, args []string, monitor string, timeout time.Duration) *vm {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	v := &vm{out: &testutil.Buffer{}, done: make(chan struct{}), monitor: monitor}
	v.cmd = exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	v.cmd.Stdout, v.cmd.Stderr = v.out, v.out
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	v.started = time.Now()
	if err := v.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting qemu: %v", err)
	}
	go func() { v.cmd.Wait(); cancel(); close(v.done) }()
	t.Cleanup(func() {
		v.cmd.Process.Kill()
		<-v.done
		// ZOS_CONSOLE_LOG=1 shows the console of passing boots too (boot
		// profiling: the node's log lines carry times).
		if t.Failed() || os.Getenv("ZOS_CONSOLE_LOG") != "" {
			t.Logf("serial console:\n%s", v.out.String())
		}
	})
	return v
}

// wait waits for a regexp on the serial console and returns its matches.
func (v *vm) wait(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	var m []string
	testutil.Eventually(t, timeout, fmt.Sprintf("%q on the console", re), func() (bool, error) {
		if m = re.FindStringSubmatch(v.out.String()); m != nil {
			return true, nil
		}
		select {
		case <-v.done:
			t.Fatalf("qemu exited while waiting for %q", re)
		default:
		}
		return false, nil
	})
	return m
}

// powerdown presses the ACPI power button and waits for QEMU to exit.
func (v *vm) powerdown(t *testing.T, timeout time.Duration) {
	t.Helper()
	c, err := net.Dial("unix", v.monitor)
	if err != nil {
		t.Fatalf("monitor: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	bufio.NewReader(c).ReadString('\n') // banner
	if _, err := io.WriteString(c, "system_powerdown\n"); err != nil {
		t.Fatalf("monitor: %v", err)
	}
	select {
	case <-v.done:
	case <-time.After(timeout):
		t.Fatalf("the node did not power off within %s", timeout)
	}
	if !strings.Contains(v.out.String(), "msg=halting") {
		t.Fatal("qemu exited without the init's halt")
	}
}

// zosctl runs the CLI in-process.
func zosctl(t testing.TB, home, grid string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"ZOSCTL_HOME": home, "ZOS_GRID": grid}
	code := cli.Run(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	if code != 0 {
		t.Fatalf("zosctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

func redisCLI(t testing.TB, port int, cmds string) string {
	t.Helper()
	cmd := exec.Command("redis-cli", "-p", strconv.Itoa(port))
	cmd.Stdin = strings.NewReader(cmds)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli: %v\n%s", err, out)
	}
	return string(out)
}

// listInitramfs decompresses and lists an image's initramfs.
func listInitramfs(t testing.TB, path string) []cpio.ReadEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	ents, err := cpio.ReadArchive(zr)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

// portOpen reports whether a forwarded port reaches a listener in the
// guest: the connection stays open (no EOF within a second).
func portOpen(t testing.TB, port int) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// extract writes archive entries under root (files, links, directories).
func extract(t testing.TB, ents []cpio.ReadEntry, root string) {
	t.Helper()
	for _, e := range ents {
		p := filepath.Join(root, e.Path)
		var err error
		switch e.Mode & 0o170000 {
		case 0o040000:
			err = os.MkdirAll(p, os.FileMode(e.Mode&0o777))
		case 0o120000:
			err = os.Symlink(string(e.Data), p)
		case 0o100000:
			err = os.WriteFile(p, e.Data, os.FileMode(e.Mode&0o777))
		}
		if err != nil {
			t.Fatalf("extracting %s: %v", e.Path, err)
		}
	}
}

var (
	registeredRe = regexp.MustCompile(`msg=node_registered node=(\d+)`)
	statusRe     = regexp.MustCompile(`zos-status node=(\d+) farm=(\d+) state=registered listening=(\S*)`)
	vmsUpRe      = regexp.MustCompile(`msg=accel_(tcg|kvm) component=vm`)
	apiServingRe = regexp.MustCompile(`msg=serving component=api`)
)

// imageEnv is a grid on the host, a farmer with a farm, a user, and an
// image built for the farm (the farmer flow).
type imageEnv struct {
	bin, cache, gridURL, guestGrid, farmer, user, img string
	farm                                              registry.Farm
	// hubPort is zgrid's hub (newGridEnv with --hub).
	hubPort int
	// farmToken is the farmer's consent that nodes join farm.
	farmToken string
}

func newImageEnv(t *testing.T) *imageEnv {
	t.Helper()
	e := newGridEnv(t, false)
	e.img = t.TempDir()
	t0 := time.Now()
	out := e.build(t, e.img)
	t.Logf("image build (%s):\n%s", time.Since(t0).Round(time.Millisecond), out)
	return e
}

// newGridEnv is newImageEnv without the image; withHub makes zgrid
// serve its hub (on e.hubPort) with release twin 1 (the farmer: the first
// twin created).
func newGridEnv(t *testing.T, withHub bool) *imageEnv {
	t.Helper()
	for _, b := range []string{"qemu-system-x86_64", "redis-cli", "ldd", "xz", "mkfs.btrfs", "btrfs", "blkid", "nft"} {
		testutil.RequireBinary(t, b)
	}
	e := &imageEnv{cache: testutil.RequireKernelCache(t), bin: t.TempDir()}
	goBuild(t, e.bin, "github.com/zos-go/zos/cmd/zgrid", "github.com/zos-go/zos/cmd/zos", "github.com/zos-go/zos/cmd/zosctl", "github.com/zos-go/zos/cmd/vminit")

	// The grid on the host; the guest reaches it as 10.0.2.2.
	port, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	e.gridURL = fmt.Sprintf("nats://127.0.0.1:%d", port)
	e.guestGrid = fmt.Sprintf("nats://10.0.2.2:%d", port)
	zargs := []string{"run", "--data", t.TempDir(), "--port", strconv.Itoa(port), "--http-port", strconv.Itoa(httpPort)}
	if withHub {
		e.hubPort = testutil.FreePort(t)
		zargs = append(zargs, "--hub", strconv.Itoa(e.hubPort), "--release-twins", "1")
	}
	zgrid := exec.Command(filepath.Join(e.bin, "zgrid"), zargs...)
	glog := &testutil.Buffer{}
	zgrid.Stdout, zgrid.Stderr = glog, glog
	if err := zgrid.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zgrid.Process.Signal(syscall.SIGTERM)
		zgrid.Wait()
		if t.Failed() {
			t.Logf("zgrid:\n%s", glog.String())
		}
	})
	e.farmer, e.user = t.TempDir(), t.TempDir()
	zosctl(t, e.farmer, e.gridURL, "key", "new")
	zosctl(t, e.user, e.gridURL, "key", "new")
	// The grid may still be starting: retry twin creation for a while.
	testutil.Eventually(t, 30*time.Second, "twin create", func() (bool, error) {
		var out, errb bytes.Buffer
		env := map[string]string{"ZOSCTL_HOME": e.farmer, "ZOS_GRID": e.gridURL}
		if cli.Run(context.Background(), []string{"twin", "create"}, cli.Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}) != 0 {
			return false, errors.New(strings.TrimSpace(errb.String()))
		}
		return true, nil
	})
	zosctl(t, e.user, e.gridURL, "twin", "create")
	if err := json.Unmarshal([]byte(zosctl(t, e.farmer, e.gridURL, "farm", "create", "imagefarm", "--json")), &e.farm); err != nil {
		t.Fatal(err)
	}
	e.farmToken = strings.TrimSpace(zosctl(t, e.farmer, e.gridURL, "farm", "token", strconv.Itoa(int(e.farm.ID))))
	return e
}

// build runs `zosctl image build` (the binary: the test process may be
// race-instrumented, which makes compression slow).
func (e *imageEnv) build(t testing.TB, out string) string {
	t.Helper()
	return e.buildWith(t, out, "--farm-token", e.farmToken, "--grid", e.guestGrid)
}

// buildWith builds an image with the given extra options.
func (e *imageEnv) buildWith(t testing.TB, out string, opts ...string) string {
	t.Helper()
	args := append([]string{"image", "build", "-o", out, "--kernel-cache", e.cache, "--zos", filepath.Join(e.bin, "zos")}, opts...)
	cmd := exec.Command(filepath.Join(e.bin, "zosctl"), args...)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("zosctl image build: %v\n%s", err, b)
	}
	return string(b)
}

// sparseDisks makes n sparse 8 GiB disk files.
func sparseDisks(t testing.TB, dir string, n int) []string {
	t.Helper()
	var paths []string
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("disk%d.img", i))
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(8 << 30); err != nil {
			t.Fatal(err)
		}
		f.Close()
		paths = append(paths, p)
	}
	return paths
}

// TestImageBoot is the image's end-to-end test: the farmer flow (farm,
// then an image baked for it), a reproducible build without a shell, a
// tcg boot with two virtio disks and user networking that registers under
// the farm, a zdb deployment answered through redis-cli, a clean power off
// by the ACPI button, and a second boot from the same disks with the same
// node id and the workload back.
func TestImageBoot(t *testing.T) {
	e := newImageEnv(t)
	gridURL, farm, user, imgA, guestGrid := e.gridURL, e.farm, e.user, e.img, e.guestGrid

	t.Run("reproducible", func(t *testing.T) {
		imgB := t.TempDir()
		e.build(t, imgB)
		for _, f := range []string{"initramfs.img", "vmlinux", "vmlinuz", "cmdline"} {
			a, err1 := os.ReadFile(filepath.Join(imgA, f))
			b, err2 := os.ReadFile(filepath.Join(imgB, f))
			if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
				t.Errorf("%s differs between two builds of the same inputs (%v %v)", f, err1, err2)
			}
		}
	})
	t.Run("no-shell", func(t *testing.T) {
		ents := listInitramfs(t, filepath.Join(imgA, "initramfs.img"))
		have := map[string]cpio.ReadEntry{}
		for _, e := range ents {
			have[e.Path] = e
			if image.IsShell(e.Path) {
				t.Errorf("the image holds %s", e.Path)
			}
		}
		for _, p := range []string{"/init", image.ZosFile, image.VminitFile, "/usr/sbin/mkfs.btrfs", "/usr/bin/btrfs", image.CACertsFile, image.DefaultsFile} {
			if _, ok := have[p]; !ok {
				t.Errorf("the image lacks %s", p)
			}
		}
		// /init is a link to zos, so that os.Executable names the
		// directory vminit is in.
		if got := string(have["/init"].Data); have["/init"].Mode&0o170000 != 0o120000 || got != strings.TrimPrefix(image.ZosFile, "/") {
			t.Errorf("/init is not a link to %s (mode %o, target %q)", image.ZosFile, have["/init"].Mode, got)
		}
		if d := string(have[image.DefaultsFile].Data); !strings.Contains(d, "farm_token="+e.farmToken) || !strings.Contains(d, guestGrid) {
			t.Errorf("defaults %q lack the farm token and grid", d)
		}
		// The helpers run inside the image's tree: their libraries are all
		// there.
		if os.Geteuid() != 0 {
			return
		}
		root := t.TempDir()
		extract(t, ents, root)
		for _, argv := range [][]string{{"/usr/sbin/mkfs.btrfs", "--version"}, {"/usr/bin/btrfs", "--version"},
			{"/usr/sbin/blkid", "--version"}, {"/usr/sbin/nft", "--version"}, {"/usr/bin/qemu-system-x86_64", "--version"}} {
			cmd := exec.Command(argv[0], argv[1:]...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
			cmd.Dir = "/"
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s in the image: %v\n%s", argv[0], err, out)
			}
		}
	})
	t.Run("guest-kernel", func(t *testing.T) { testGuestKernel(t, e, filepath.Join(imgA, "initramfs.img")) })
	if t.Failed() {
		return
	}

	// Two disks (sparse) the node claims; the second measures as an HDD.
	disks := t.TempDir()
	paths := sparseDisks(t, disks, 2)
	zdbPort := testutil.FreePort(t)
	// Ports a node must not serve, forwarded to probe them from the host.
	probes := map[int]int{}
	fwd := [][2]int{{zdbPort, 9900}}
	for _, p := range []int{22, 80, 443, 2375, 6379, 8080} {
		probes[p] = testutil.FreePort(t)
		fwd = append(fwd, [2]int{probes[p], p})
	}
	cfg := vmConfig{Kernel: filepath.Join(imgA, "vmlinux"), Initrd: filepath.Join(imgA, "initramfs.img"),
		Cmdline: "console=ttyS0 quiet tsc_early_khz=2600000 panic=-1", Disks: paths, Monitor: filepath.Join(disks, "mon.sock"),
		HostFwd: fwd, MemMiB: 1536}

	// First boot: registration under the farm.
	v := bootVM(t, cfg, 4*time.Minute)
	m := v.wait(t, registeredRe, 150*time.Second)
	t.Logf("first boot: QEMU start to registered %s", time.Since(v.started).Round(100*time.Millisecond))
	nodeID := m[1]
	// The VM module is up: the node built the guest initramfs from the
	// image's kernel and chose an accelerator (tcg here: no nested KVM),
	// which it does before registering.
	v.wait(t, vmsUpRe, 5*time.Second)
	if strings.Contains(v.out.String(), "zmachine_disabled") {
		t.Error("the booted node runs no VMs (zmachine_disabled)")
	}
	// The API subscribes to the relay just after registration.
	v.wait(t, apiServingRe, 30*time.Second)
	var node registry.Node
	if err := json.Unmarshal([]byte(zosctl(t, user, gridURL, "node", "show", nodeID, "--json")), &node); err != nil {
		t.Fatal(err)
	}
	if node.FarmID != farm.ID {
		t.Fatalf("node %s is in farm %d, want %d", nodeID, node.FarmID, farm.ID)
	}

	// A zdb through the grid, answered from the host.
	var d gridtypes.Deployment
	if err := json.Unmarshal([]byte(zosctl(t, user, gridURL, "deploy", "zdb", "--node", nodeID, "--size", "1G", "--password", "pw1", "--name", "db", "--json")), &d); err != nil {
		t.Fatal(err)
	}
	wl := d.Get("db")
	if wl == nil || wl.Result.State != gridtypes.StateOk {
		t.Fatalf("zdb workload: %+v", wl)
	}
	var zr gridtypes.ZDBResult
	if err := wl.Result.Unmarshal(&zr); err != nil {
		t.Fatal(err)
	}
	if got := redisCLI(t, zdbPort, fmt.Sprintf("SELECT %s pw1\nSET k hello\nGET k\n", zr.Namespace)); !strings.Contains(got, "hello") {
		t.Fatalf("redis-cli: %q", got)
	}
	// The node listens on the 0-db port only, over IPv4 and IPv6 (its TCP
	// sockets, as the console reports them from /proc/net/tcp{,6}).
	st := v.wait(t, statusRe, 30*time.Second)
	for _, l := range strings.Split(st[3], ",") {
		if l != "10.0.2.15:9900" && l != "[::]:9900" {
			t.Errorf("the node listens on %q, want only the 0-db port", st[3])
		}
	}
	// From the host: the 0-db port holds a connection open, the others
	// are closed at once (user networking accepts, then drops what the
	// guest refuses).
	if !portOpen(t, zdbPort) {
		t.Error("the 0-db port looks closed from the host")
	}
	for guest, host := range probes {
		if portOpen(t, host) {
			t.Errorf("the node serves port %d", guest)
		}
	}
	v.powerdown(t, 60*time.Second)

	// Second boot from the same disks: same node, the workload back.
	v2 := bootVM(t, cfg, 4*time.Minute)
	m2 := v2.wait(t, registeredRe, 150*time.Second)
	t.Logf("second boot: QEMU start to registered %s", time.Since(v2.started).Round(100*time.Millisecond))
	if m2[1] != nodeID {
		t.Fatalf("second boot registered node %s, want %s", m2[1], nodeID)
	}
	// Every 500ms at most: each try is a connection into the VM under tcg.
	if err := testutil.PollEvery(60*time.Second, 500*time.Millisecond, func() (bool, error) {
		got := redisCLI(t, zdbPort, fmt.Sprintf("SELECT %s pw1\nGET k\n", zr.Namespace))
		return strings.Contains(got, "hello"), fmt.Errorf("got %q", got)
	}); err != nil {
		t.Fatalf("the zdb did not come back: %v", err)
	}
	v2.powerdown(t, 60*time.Second)
}

// foreignDisk writes an MBR partition table and some data, as a disk of
// another system would have.
func foreignDisk(t testing.TB, path string) []byte {
	t.Helper()
	head := make([]byte, 2<<20)
	// One Linux partition from sector 2048, 8 MiB long.
	entry := head[446:462]
	entry[4] = 0x83
	binary.LittleEndian.PutUint32(entry[8:], 2048)
	binary.LittleEndian.PutUint32(entry[12:], 16384)
	head[510], head[511] = 0x55, 0xAA
	copy(head[1<<20:], "someone else's data")
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(head, 0); err != nil {
		t.Fatal(err)
	}
	return head
}

// TestImageBadInput boots with garbage on the kernel command line, a grid
// URL nobody answers, and a disk of someone else next to a blank one: the
// node says what is wrong on the console, keeps retrying, claims only the
// blank disk, leaves the other byte for byte as it was, and still powers
// off cleanly.
func TestImageBadInput(t *testing.T) {
	e := newImageEnv(t)
	dir := t.TempDir()
	paths := sparseDisks(t, dir, 2)
	before := foreignDisk(t, paths[0])
	cfg := vmConfig{Kernel: filepath.Join(e.img, "vmlinux"), Initrd: filepath.Join(e.img, "initramfs.img"),
		Cmdline: "console=ttyS0 quiet tsc_early_khz=2600000 farm=abc runmode=fast grid=nats://10.0.2.2:1",
		Disks:   paths, Monitor: filepath.Join(dir, "mon.sock"), MemMiB: 1536}
	v := bootVM(t, cfg, 3*time.Minute)
	for _, re := range []string{
		`error: +kernel command line: farm="abc" is not a farm id`,
		`error: +kernel command line: runmode="fast"`,
		`msg=disk_ignored .*dev=/dev/vda reason=`,
		`msg=pool_created .*dev=/dev/vdb`,
		`error: +grid: connecting to the grid at nats://10.0.2.2:1`,
	} {
		v.wait(t, regexp.MustCompile(re), 120*time.Second)
	}
	if strings.Contains(v.out.String(), "node_registered") {
		t.Fatal("registered with a grid that does not exist")
	}
	v.powerdown(t, 60*time.Second)
	f, err := os.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	after := make([]byte, len(before))
	if _, err := io.ReadFull(f, after); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the node wrote to a disk it does not own")
	}
}
