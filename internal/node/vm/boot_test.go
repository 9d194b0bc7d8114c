package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/image"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

// Marker is what the test entrypoints print.
const marker = "ZOS-VM-MARKER-7f3a"

func repoRoot(t testing.TB) string {
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
	cache := filepath.Join(repoRoot(t), ".cache", "kernel")
	if debs, _ := filepath.Glob(filepath.Join(cache, "linux-image-*-amd64_*.deb")); len(debs) == 0 {
		testutil.Skip(t, "no Debian kernel in "+cache+" (make deps)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k, err := kernel.Fetch(ctx, cache, slog.New(slog.NewTextHandler(io.Discard, nil)))
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

func TestInitramfs(t *testing.T) {
	kit := newGuestKit(t)
	f, err := os.Open(kit.initramfs)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := image.ReadArchive(f)
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
	for _, a := range []string{"sh", "cat", "echo", "mount", "ls", "hostname", "sleep"} {
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dir := t.TempDir()
	vmc.Console = filepath.Join(dir, "console.log")
	vmc.QMP = filepath.Join(dir, "qmp.sock")
	tags := make([]string, 0, len(shares))
	for tag := range shares {
		tags = append(tags, tag)
	}
	for i, tag := range sortedKeys(shares) {
		sock := filepath.Join(dir, fmt.Sprintf("fs%d.sock", i))
		fsd, err := qemu.StartVirtiofsd(ctx, "", sock, shares[tag], log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(fsd.Kill)
		vmc.FS = append(vmc.FS, qemu.FS{ID: fmt.Sprintf("fs%d", i), Tag: tag, Socket: sock})
	}
	_ = tags
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
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
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
		Cmdline: "quiet panic=-1 root=vroot rootfstype=virtiofs " + guest.ParamConfig + "=" + enc,
	}
}

// TestVminitBoot boots a busybox root shared by virtiofs with vminit: the
// entrypoint prints the marker, sees its env and the extra share, and the
// VM powers off when it ends.
func TestVminitBoot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	kit := newGuestKit(t)
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
}

// TestVminitBadEntrypoint: an entrypoint that does not exist gives a
// clear error on the console and a powered-off VM, not a hang.
func TestVminitBadEntrypoint(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	kit := newGuestKit(t)
	root := busyboxRoot(t)
	cfg := guest.Config{Entrypoint: []string{"/no/such/entrypoint"}}
	res := boot(t, kit.containerVM(t, cfg), map[string]string{"vroot": root}, 60*time.Second)
	if !strings.Contains(res.console, "starting entrypoint") || !strings.Contains(res.console, "no such file") {
		t.Fatalf("console lacks the entrypoint error:\n%s", res.console)
	}
}
