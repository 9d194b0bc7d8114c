package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/node/vm/vmtest"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/testutil"
)

// overlayRoot mounts an overlay like the node's VM roots: lower is the
// flist's read-only layer, upper and work live in vol (the root volume).
// It is unmounted in t.Cleanup (registered before the caller's manager,
// so after its VMs are gone).
func overlayRoot(t *testing.T, lower, vol string) string {
	t.Helper()
	testutil.RequireRoot(t)
	upper, work, target := filepath.Join(vol, "upper"), filepath.Join(vol, "work"), t.TempDir()
	for _, d := range []string{upper, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o",
		"lowerdir="+lower+",upperdir="+upper+",workdir="+work, target).CombinedOutput(); err != nil {
		t.Fatalf("mounting the overlay: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", target).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", target, err, out)
		}
	})
	return target
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// virtiofsRootInitrd is a kernel-mode initrd: it mounts the virtiofs root
// and switches to init= with the entrypoint's arguments.
func virtiofsRootInitrd(t *testing.T, kit *guestKit) string {
	script := `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
for m in $(/bin/busybox cat /modules); do /bin/busybox insmod $m; done
i=0
until /bin/busybox mount -t virtiofs vroot /newroot; do
	i=$((i+1)); [ $i -gt 100 ] && /bin/busybox poweroff -f
	/bin/busybox sleep 0.05
done
init=$(/bin/busybox sed -n 's/.* init=\([^ ]*\).*/\1/p' /proc/cmdline)
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot "$init" "$@"
`
	return vmtest.MarkerInitramfs(t, kit.kernel.ModulesDir(), script, []string{"virtio_mmio", "virtiofs"})
}

// testKernelBootFiles performs the attack of a kernel-mode guest on the
// node's files: it replaces /boot/initrd.img of its root with a symlink
// to a host file and crashes itself, so that QEMU (root) loads that file
// into guest memory on the restart. The host file is an initramfs that
// prints hostLoaded: a control boot handing QEMU the guest's path shows
// the attack works; through the manager, the restarted VM boots the
// flist's initrd again (copied out of the read-only layer at provision)
// and never the host file.
func testKernelBootFiles(t *testing.T, kit *guestKit) {
	const hostLoaded = "HOST-FILE-LOADED-5c1e"
	hostFile := vmtest.MarkerInitramfs(t, kit.kernel.ModulesDir(), "#!/bin/busybox sh\n/bin/busybox echo "+hostLoaded+"\n/bin/busybox poweroff -f\n", nil)

	// The flist's read-only layer: busybox, its kernel and initrd, an init.
	flist := busyboxRoot(t)
	copyFile(t, kit.kernel.BzImage, filepath.Join(flist, "boot", "vmlinuz"), 0o644)
	copyFile(t, virtiofsRootInitrd(t, kit), filepath.Join(flist, "boot", "initrd.img"), 0o644)
	bb := "/bin/busybox "
	initScript := "#!/bin/sh\n" +
		"if [ -L /boot/initrd.img ]; then\n" +
		"  echo " + marker + " second-boot initrd-is-link-to=$(" + bb + "readlink /boot/initrd.img)\n" +
		"  while true; do sleep 1; done\n" +
		"fi\n" +
		bb + "rm /boot/initrd.img && " + bb + "ln -s " + hostFile + " /boot/initrd.img && sync\n" +
		"echo " + marker + " replaced\n" +
		"poweroff -f\n"
	if err := os.WriteFile(filepath.Join(flist, "attack-init"), []byte(initScript), 0o755); err != nil {
		t.Fatal(err)
	}
	vol := t.TempDir()
	root := overlayRoot(t, flist, vol)
	m, _ := newTestManager(t, kit, nil)

	// Provision: the boot files are copied out of the read-only layer.
	boot, err := CopyBootFiles(flist, "/boot/vmlinuz", "/boot/initrd.img", filepath.Join(vol, "boot"))
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "kattack", CPUs: 1, MemoryMiB: 256, RootDir: root, Boot: boot,
		Guest: guest.Config{Entrypoint: []string{"/attack-init"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	if err := m.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitConsole(ctx, t, m, "kattack", marker+" replaced")
	info, err := m.Inspect(ctx, "kattack")
	if err != nil {
		t.Fatal(err)
	}
	if !waitGone(ctx, hostPids{}, info.Pid, 30*time.Second) {
		t.Fatal("the guest powered off but QEMU stays")
	}
	// The attack took place: the guest's root links to the host file.
	if got, err := os.Readlink(filepath.Join(vol, "upper", "boot", "initrd.img")); err != nil || got != hostFile {
		t.Fatalf("the guest's /boot/initrd.img: got link %q, %v; want a link to %s", got, err, hostFile)
	}

	// Control: QEMU handed the path in the guest's root loads the host
	// file (what the node did before the boot files were copied out).
	ctl := qemu.VM{Name: "ctl", Accel: qemu.AccelTCG, CPUs: 1, MemoryMiB: 256,
		Kernel: boot.Kernel, Initrd: filepath.Join(root, "boot", "initrd.img"), Cmdline: "panic=-1"}
	if res := boot1(t, ctl); !strings.Contains(res, hostLoaded) {
		t.Fatalf("control boot from the guest's /boot did not load the host file:\n%s", res)
	}

	// The crash restart boots the copies.
	if ev := m.Check(ctx, time.Now()); len(ev) != 1 || !ev[0].Restarted {
		t.Fatalf("got events %+v, want a restart", ev)
	}
	waitConsole(ctx, t, m, "kattack", marker+" second-boot initrd-is-link-to="+hostFile)
	p, _ := m.ConsolePath("kattack")
	if c := readFile(p); strings.Contains(c, hostLoaded) {
		t.Fatalf("the restarted VM loaded the host file:\n%s", c)
	}
	// So does a new provision (a node restart): the copies are taken from
	// the read-only layer again, not from the guest's root.
	if _, err := CopyBootFiles(flist, "/boot/vmlinuz", "/boot/initrd.img", filepath.Join(vol, "boot")); err != nil {
		t.Fatal(err)
	}
	if _, err := CopyBootFiles(root, "/boot/vmlinuz", "/boot/initrd.img", filepath.Join(t.TempDir(), "boot")); !errors.Is(err, ErrBootFile) {
		t.Fatalf("copying from the guest's root: got %v, want %v", err, ErrBootFile)
	}
}

// boot1 boots v until QEMU exits (60 s at most) and returns the console.
func boot1(t *testing.T, v qemu.VM) string {
	t.Helper()
	return boot(t, v, nil, 60*time.Second).console
}

// procStatus is /proc/PID/status as key -> value.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	st := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st
}

// children are the pids whose parent is pid.
func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		var c int
		fmt.Sscan(f, &c)
		out = append(out, c)
	}
	return out
}

// capSysAdmin is bit 21 of a capability mask.
const capSysAdmin = 1 << 21

// testSandbox: QEMU runs as the VM's own unprivileged user with no
// capabilities, under its seccomp filter, chrooted into an empty
// directory; each virtiofsd serves from its own namespaces under seccomp
// without CAP_SYS_ADMIN. The guest tries to set the xattrs the host
// would act on (trusted.overlay.* on its overlay root, which overlayfs
// would follow; security.capability on its volume, which the host kernel
// would honour) and to read the host's: on the host none of them exists,
// the guest's are kept under user.virtiofs.*, and the host's stay hidden.
func testSandbox(t *testing.T, kit *guestKit) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	probe := filepath.Join(t.TempDir(), "xattrprobe")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", probe, "./testdata/xattrprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building xattrprobe: %v\n%s", err, out)
	}
	flist := busyboxRoot(t)
	copyFile(t, probe, filepath.Join(flist, "xattrprobe"), 0o755)
	if err := os.MkdirAll(filepath.Join(flist, "etc", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	vol := t.TempDir()
	root := overlayRoot(t, flist, vol)
	share := t.TempDir()
	hostFile := filepath.Join(share, "hostfile")
	if err := os.WriteFile(hostFile, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"user.host.secret", "trusted.host.secret"} {
		if err := syscall.Setxattr(hostFile, x, []byte("node"), 0); err != nil {
			t.Fatalf("setting %s on the host: %v", x, err)
		}
	}
	m, _ := newTestManager(t, kit, nil)
	sh := "/bin/busybox mkdir /probe && echo x > /probe/f && echo x > /data/f && " +
		"/xattrprobe /probe /probe/f /etc/dir /data/f /data/hostfile; echo " + marker + "; while true; do sleep 1; done"
	spec := Spec{Name: "sandboxed", CPUs: 1, MemoryMiB: 256, RootDir: root,
		Shares: []Share{{Dir: share, Mountpoint: "/data"}},
		Guest:  guest.Config{Entrypoint: []string{"/bin/sh", "-c", sh}}}
	if err := m.Run(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitConsole(ctx, t, m, "sandboxed", "xattrprobe done")
	p, _ := m.ConsolePath("sandboxed")
	console := readFile(p)
	if testing.Verbose() {
		for _, l := range strings.Split(console, "\n") {
			if strings.Contains(l, "xattrprobe") {
				t.Log(strings.TrimSpace(l))
			}
		}
	}

	// QEMU: its own user, no capabilities, seccomp, empty chroot.
	info, err := m.Inspect(ctx, "sandboxed")
	if err != nil || info.Status != "running" {
		t.Fatalf("inspect: got %+v, %v", info, err)
	}
	st := procStatus(t, info.Pid)
	uid := fmt.Sprint(m.cfg.UIDBase) // the first VM's user
	want := map[string]string{
		"Uid": strings.Repeat(uid+"\t", 3) + uid, "Gid": strings.Repeat(uid+"\t", 3) + uid, "Groups": uid,
		"CapPrm": "0000000000000000", "CapEff": "0000000000000000", "Seccomp": "2", "NoNewPrivs": "1",
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("qemu %s: got %q, want %q", k, st[k], v)
		}
	}
	if r, err := os.Readlink(fmt.Sprintf("/proc/%d/root", info.Pid)); err != nil || r != chrootDir(m.vmDir("sandboxed")) {
		t.Errorf("qemu root: got %q, %v; want the empty chroot %s", r, err, chrootDir(m.vmDir("sandboxed")))
	}
	// The monitor still answers: pause and resume.
	if err := m.Pause(ctx, "sandboxed"); err != nil {
		t.Fatal(err)
	}
	if err := m.Resume(ctx, "sandboxed"); err != nil {
		t.Fatal(err)
	}

	// virtiofsd: the process serving the guest (the child in its pid
	// namespace) runs under seccomp in its own mount namespace, without
	// CAP_SYS_ADMIN.
	var state state
	if err := readJSON(filepath.Join(m.vmDir("sandboxed"), "state.json"), &state); err != nil {
		t.Fatal(err)
	}
	ourNS, _ := os.Readlink("/proc/self/ns/mnt")
	for _, pid := range state.Virtiofsd {
		kids := children(pid)
		if len(kids) != 1 {
			t.Errorf("virtiofsd %d: got children %v, want the sandboxed server", pid, kids)
			continue
		}
		st := procStatus(t, kids[0])
		var eff uint64
		fmt.Sscanf(st["CapEff"], "%x", &eff)
		if st["Seccomp"] != "2" || st["NoNewPrivs"] != "1" || eff&capSysAdmin != 0 {
			t.Errorf("virtiofsd %d: got seccomp %s, no_new_privs %s, caps %s; want 2, 1, no CAP_SYS_ADMIN", kids[0], st["Seccomp"], st["NoNewPrivs"], st["CapEff"])
		}
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", kids[0])); ns == ourNS || ns == "" {
			t.Errorf("virtiofsd %d: mount namespace %q, the node's is %q", kids[0], ns, ourNS)
		}
	}

	// xattrs on the host: none the host acts on; the guest's are mapped.
	files := map[string]string{
		"/probe": filepath.Join(vol, "upper", "probe"), "/probe/f": filepath.Join(vol, "upper", "probe", "f"),
		"/etc/dir": filepath.Join(vol, "upper", "etc", "dir"), "/data/f": filepath.Join(share, "f"),
	}
	for g, h := range files {
		if !strings.Contains(console, "xattrprobe set "+g+" user.zos.probe: ok") {
			t.Errorf("%s: the guest could not set its own user xattr:\n%s", g, console)
		}
		for _, x := range []string{"trusted.overlay.redirect", "trusted.zos.probe", "security.capability"} {
			if v, err := getxattr(h, x); err == nil {
				t.Errorf("%s (guest %s): host xattr %s = %q, set by the guest", h, g, x, v)
			}
		}
		if v, err := getxattr(h, "user.virtiofs.trusted.zos.probe"); err != nil || v != "guest" {
			t.Errorf("%s (guest %s): user.virtiofs.trusted.zos.probe: got %q, %v; want the guest's, mapped", h, g, v, err)
		}
	}
	if v, err := getxattr(filepath.Join(vol, "upper", "etc", "dir"), "trusted.overlay.redirect"); err == nil {
		t.Errorf("upper /etc/dir has trusted.overlay.redirect %q", v)
	}
	line := ""
	for _, l := range strings.Split(console, "\n") {
		if strings.Contains(l, "xattrprobe list /data/hostfile:") {
			line = l
		}
	}
	if line == "" || strings.Contains(line, "host.secret") {
		t.Errorf("the guest lists the host's xattrs: %q", line)
	}
}

// getxattr reads the xattr name of p (without following a last link).
func getxattr(p, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := syscall.Getxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(buf[:n], "\x00")), nil
}
