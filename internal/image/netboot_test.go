package image_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/image"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// Firmware of a PC that boots from the network: SeaBIOS and the iPXE ROM
// of an e1000 NIC (Debian's seabios and ipxe-qemu; its virtio-net ROM is
// not run by this SeaBIOS, the e1000 one is).
const (
	seaBIOS  = "/usr/share/seabios/bios-256k.bin"
	ipxeROM  = "/usr/lib/ipxe/qemu/pxe-e1000.rom"
	netbootM = 2048
)

// netbootArgs is the ordered argv of a PC with an empty disk and nothing
// else to boot from than its NIC: iPXE gets DHCP from QEMU's user
// network, whose boot file is a script in tftpDir (a BOOTP file name
// holds 128 bytes: too few for a URL with a farm token) that chains to
// the grid's script (on the host, 10.0.2.2).
func netbootArgs(disk, monitor, tftpDir, bootfile string) []string {
	return []string{"-M", "pc", "-accel", "tcg", "-cpu", "max", "-smp", "2", "-m", strconv.Itoa(netbootM),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
		"-monitor", "unix:" + monitor + ",server,nowait", "-bios", seaBIOS, "-boot", "n",
		"-drive", "id=d0,file=" + disk + ",format=raw,if=none,cache=unsafe", "-device", "virtio-blk-pci,drive=d0",
		"-netdev", "user,id=n0,tftp=" + tftpDir + ",bootfile=" + bootfile, "-device", "e1000,netdev=n0,romfile=" + ipxeROM}
}

func TestNetbootArgs(t *testing.T) {
	got := strings.Join(netbootArgs("/d", "/m", "/t", "zos.ipxe"), " ")
	want := "-M pc -accel tcg -cpu max -smp 2 -m 2048 -nodefaults -no-user-config -nographic -no-reboot -serial stdio " +
		"-monitor unix:/m,server,nowait -bios " + seaBIOS + " -boot n " +
		"-drive id=d0,file=/d,format=raw,if=none,cache=unsafe -device virtio-blk-pci,drive=d0 " +
		"-netdev user,id=n0,tftp=/t,bootfile=zos.ipxe -device e1000,netdev=n0,romfile=" + ipxeROM
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

// TestNetboot: a machine with an empty disk boots over the network from
// zgrid: the farmer's farm follows channel testing, whose signed release
// carries an image built with no farm and no grid baked in (vmlinuz,
// initramfs.img; the release root and hub are baked in for the local
// boot at the end, which then updates itself from there); QEMU's iPXE fetches the farm's script from the hub,
// then the kernel and initramfs it names; the node joins the farm with
// the token in the script's URL, registers on the grid the script names,
// and shows the release and channel on its console.
func TestNetboot(t *testing.T) {
	for _, f := range []string{seaBIOS, ipxeROM} {
		if _, err := os.Stat(f); err != nil {
			testutil.Skip(t, "no "+f+" (make deps: seabios, ipxe-qemu)")
		}
	}
	e := newGridEnv(t, true)
	hub := fmt.Sprintf("http://127.0.0.1:%d", e.hubPort)
	// The image's zos says it is the release it ships in: the booted node
	// finds nothing newer to update to.
	zos := filepath.Join(t.TempDir(), "zos")
	cmd := exec.Command("go", "build", "-ldflags", "-X github.com/zos-go/zos/internal/version.Version=v1.0.0", "-o", zos, "github.com/zos-go/zos/cmd/zos")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	repo := filepath.Join(t.TempDir(), "repo")
	zosctl(t, e.farmer, e.gridURL, "release", "init", repo)
	// No farm, token or grid baked in (the script says them); the release
	// root and hub are, for the local boot below.
	img := t.TempDir()
	t0 := time.Now()
	e.buildWith(t, img, "--zos", zos, "--update-root", filepath.Join(repo, "metadata", "1.root.json"),
		"--update-hub", fmt.Sprintf("http://10.0.2.2:%d", e.hubPort))
	t.Logf("image build %s", time.Since(t0).Round(time.Millisecond))

	farm := strconv.Itoa(int(e.farm.ID))
	zosctl(t, e.farmer, e.gridURL, "farm", "channel", farm, "testing")
	zosctl(t, e.farmer, e.gridURL, "release", "add", repo, "--channel", "testing", "--version", "v1.0.0",
		"vmlinuz="+filepath.Join(img, "vmlinuz"), "initramfs.img="+filepath.Join(img, "initramfs.img"), "zos="+zos)
	zosctl(t, e.farmer, e.gridURL, "release", "sign", repo)
	t0 = time.Now()
	zosctl(t, e.farmer, e.gridURL, "release", "publish", repo, "--hub", hub)
	t.Logf("release publish %s", time.Since(t0).Round(time.Millisecond))

	dir := t.TempDir()
	disk := sparseDisks(t, dir, 1)[0]
	// What a farmer's DHCP/TFTP server hands out: chain to the grid.
	tftp := t.TempDir()
	chain := fmt.Sprintf("#!ipxe\nchain http://10.0.2.2:%d/boot/%s.ipxe?farm_token=%s\n", e.hubPort, farm, e.farmToken)
	if err := os.WriteFile(filepath.Join(tftp, "zos.ipxe"), []byte(chain), 0o644); err != nil {
		t.Fatal(err)
	}
	mon := filepath.Join(dir, "mon.sock")
	v := bootArgs(t, netbootArgs(disk, mon, tftp, "zos.ipxe"), mon, 6*time.Minute)
	m := v.wait(t, registeredRe, 300*time.Second)
	t.Logf("network boot: QEMU start to registered %s", time.Since(v.started).Round(100*time.Millisecond))
	st := v.wait(t, regexp.MustCompile(`zos-status node=(\d+) farm=(\d+) state=registered \S* version=(\S+) channel=(\S+)`), 60*time.Second)
	if st[1] != m[1] || st[2] != farm || st[3] != "v1.0.0" || st[4] != "testing" {
		t.Errorf("console: node %s farm %s version %s channel %s, want node %s farm %s v1.0.0 testing", st[1], st[2], st[3], st[4], m[1], farm)
	}
	// The node trusts the release root the script pinned: it checks its
	// channel and finds nothing newer than what it runs.
	v.wait(t, regexp.MustCompile(`version:\s+v1.0.0\s+channel: testing\s+update: none yet`), 120*time.Second)
	var node registry.Node
	if err := json.Unmarshal([]byte(zosctl(t, e.user, e.gridURL, "node", "show", m[1], "--json")), &node); err != nil {
		t.Fatal(err)
	}
	if strconv.Itoa(int(node.FarmID)) != farm || node.Version != "v1.0.0" {
		t.Errorf("node %s: farm %d version %q, want farm %s v1.0.0", m[1], node.FarmID, node.Version, farm)
	}
	v.powerdown(t, 60*time.Second)

	// The same image booted locally (microvm, PVH kernel from a file), for
	// the figure: what the network boot costs on top.
	local := t.TempDir()
	lv := bootVM(t, vmConfig{Kernel: filepath.Join(img, "vmlinux"), Initrd: filepath.Join(img, "initramfs.img"),
		Cmdline: "console=ttyS0 quiet tsc_early_khz=2600000 panic=-1 farm_token=" + e.farmToken + " grid=" + e.guestGrid,
		Disks:   sparseDisks(t, local, 1), Monitor: filepath.Join(local, "mon.sock"), MemMiB: netbootM}, 4*time.Minute)
	lv.wait(t, registeredRe, 150*time.Second)
	t.Logf("local boot of the same image: QEMU start to registered %s", time.Since(lv.started).Round(100*time.Millisecond))
	// Its update root and hub are the ones baked in.
	lv.wait(t, regexp.MustCompile(`version:\s+v1.0.0\s+channel: testing\s+update: none yet`), 120*time.Second)
	lv.powerdown(t, 60*time.Second)
}

// TestValidateUpdateSettings: a baked release root must exist and the
// hub URL must fit in the command line.
func TestValidateUpdateSettings(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root.json")
	if err := os.WriteFile(root, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := image.Config{Out: "o", KernelCache: "k", Zos: "z", NoQEMU: true}
	tests := []struct {
		name      string
		root, hub string
		wantErr   bool
	}{
		{"root and hub", root, "http://10.0.2.2:8081", false},
		{"missing root", root + ".gone", "", true},
		{"hub with a space", "", "http://a b", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			c.UpdateRoot, c.UpdateHub = tt.root, tt.hub
			if err := c.Validate(); (err != nil) != tt.wantErr {
				t.Fatalf("got %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
