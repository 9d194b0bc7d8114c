package image_test

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/node/power"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// lan is a farm LAN on the host for the wake-on-LAN test: a bridge with a
// veth port (for carrier) and an IPv4 /24, and a raw socket on the bridge
// that sees every frame on it, as a network card's wake-on-LAN logic does.
type lan struct {
	bridge    string
	broadcast string // IPv4:9
	fd        int
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newLAN(t *testing.T) *lan {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "ip")
	r := rand.IntN(0xffff)
	l := &lan{bridge: fmt.Sprintf("zwol%04x", r)}
	port, peer := fmt.Sprintf("zwop%04x", r), fmt.Sprintf("zwoq%04x", r)
	subnet := fmt.Sprintf("10.251.%d", rand.IntN(250)+1)
	l.broadcast = subnet + ".255:9"
	ipCmd(t, "link", "add", l.bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", l.bridge).Run() })
	ipCmd(t, "link", "add", port, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", port).Run() })
	ipCmd(t, "link", "set", port, "master", l.bridge, "up")
	ipCmd(t, "link", "set", peer, "up")
	ipCmd(t, "addr", "add", subnet+".1/24", "dev", l.bridge)
	ipCmd(t, "link", "set", l.bridge, "up")

	ifi, err := net.InterfaceByName(l.bridge)
	if err != nil {
		t.Fatal(err)
	}
	proto := htons(syscall.ETH_P_ALL)
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(proto))
	if err != nil {
		t.Fatalf("raw socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		t.Fatalf("binding the raw socket to %s: %v", l.bridge, err)
	}
	tv := syscall.Timeval{Usec: 200000}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	l.fd = fd
	return l
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// waitMagic waits for a frame on the LAN carrying the magic packet of mac.
func (l *lan) waitMagic(t *testing.T, mac string, timeout time.Duration) {
	t.Helper()
	buf := make([]byte, 65536)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n, _, err := syscall.Recvfrom(l.fd, buf, 0)
		if err != nil {
			continue // the receive timeout: look at the deadline
		}
		if power.IsMagicPacket(buf[:n], mac) {
			return
		}
	}
	t.Fatalf("no magic packet for %s on %s within %s", mac, l.bridge, timeout)
}

// startPeer starts a hosted node of the farm on the host, sending its
// wake-on-LAN packets to the LAN's broadcast; stopped and cleaned at the
// end of the test.
func startPeer(t *testing.T, e *imageEnv, l *lan) *testutil.Buffer {
	t.Helper()
	testutil.RequireBinary(t, "losetup")
	data := t.TempDir()
	zdb := testutil.FreePort(t)
	cmd := exec.Command(filepath.Join(e.bin, "zos"), "node", "--data", data, "--grid", e.gridURL, "--farm-token", e.farmToken,
		"--disk", "ssd:4G", "--zdb-port", strconv.Itoa(zdb), "--uptime-every", "2s", "--prefix", fmt.Sprintf("w%d", zdb),
		"--reserved-mem", "256M", "--wake-to", l.broadcast)
	out := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("peer node:\n%s", out.String())
		}
		detachUnder(t, data)
	})
	return out
}

// detachUnder unmounts what is mounted under dir and detaches the loop
// devices backed by files under it (a node that did not stop cleanly).
func detachUnder(t *testing.T, dir string) {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmounting %s: %v", mounts[i], err)
		}
	}
	backs, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, bf := range backs {
		if v, err := os.ReadFile(bf); err == nil && strings.HasPrefix(strings.TrimSpace(string(v)), dir) {
			dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(bf)))
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Logf("detaching %s: %v %s", dev, err, out)
			}
		}
	}
}

// nodeRecord is the registry's record of a node, as zosctl shows it.
func nodeRecord(t *testing.T, e *imageEnv, id string) registry.Node {
	t.Helper()
	var n registry.Node
	if err := json.Unmarshal([]byte(zosctl(t, e.user, e.gridURL, "node", "show", id, "--json")), &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPowerStandbyWake is power management end to end: the boot image's
// node, told by its farmer to go to standby, powers off (QEMU exits after
// init's halt) and the registry shows it down; the farmer wakes it: the
// grid asks the awake node of the farm (a hosted node on the farm LAN),
// which broadcasts the magic packet of the node's registered MAC; the
// harness, as the machine's wake-on-LAN hardware, sees it on the LAN and
// starts QEMU again; the node comes back as the same node, up.
func TestPowerStandbyWake(t *testing.T) {
	testutil.RequireRoot(t)
	l := newLAN(t)
	e := newImageEnv(t)
	disks := t.TempDir()
	cfg := vmConfig{Kernel: filepath.Join(e.img, "vmlinux"), Initrd: filepath.Join(e.img, "initramfs.img"),
		Cmdline: "console=ttyS0 quiet tsc_early_khz=2600000 panic=-1", Disks: sparseDisks(t, disks, 1),
		Monitor: filepath.Join(disks, "mon.sock"), MemMiB: 1024}
	v := bootVM(t, cfg, 5*time.Minute)
	peerOut := startPeer(t, e, l)
	m := v.wait(t, registeredRe, 150*time.Second)
	id := m[1]
	t.Logf("boot: QEMU start to registered %s", time.Since(v.started).Round(100*time.Millisecond))
	// The node follows its events once registered: wait for its API,
	// started just after the event loops.
	v.wait(t, apiServingRe, 30*time.Second)
	n := nodeRecord(t, e, id)
	// QEMU's first NIC: 52:54:00:12:34:56.
	const mac = "52:54:00:12:34:56"
	found := false
	for _, i := range n.Interfaces {
		found = found || i.MAC == mac
	}
	if !found {
		t.Fatalf("node %s registered interfaces %+v, want one with QEMU's MAC %s", id, n.Interfaces, mac)
	}

	// Standby: the node powers off.
	t0 := time.Now()
	zosctl(t, e.farmer, e.gridURL, "node", "standby", id)
	select {
	case <-v.done:
	case <-time.After(90 * time.Second):
		t.Fatal("the node did not power off after the standby request")
	}
	if out := v.out.String(); !strings.Contains(out, "msg=standby") || !strings.Contains(out, "msg=halting") {
		t.Fatal("qemu exited without the node's standby and init's halt")
	}
	t.Logf("standby: request to QEMU exit %s", time.Since(t0).Round(100*time.Millisecond))
	if n := nodeRecord(t, e, id); n.Power != registry.PowerDown || n.PowerTarget != registry.PowerDown {
		t.Fatalf("after standby: got power %q target %q, want down, down", n.Power, n.PowerTarget)
	}

	// The peer is registered and awake.
	testutil.Eventually(t, 90*time.Second, "the peer node to register", func() (bool, error) {
		return strings.Contains(peerOut.String(), "msg=node_registered"), nil
	})
	// Wake: the peer sends the magic packet on the LAN.
	t1 := time.Now()
	out := zosctl(t, e.farmer, e.gridURL, "node", "wake", id)
	if !strings.Contains(out, "sends its Wake-on-LAN packet") {
		t.Fatalf("node wake: got %q, want a peer to send the packet", out)
	}
	l.waitMagic(t, mac, 30*time.Second)
	t.Logf("wake: request to magic packet on the LAN %s", time.Since(t1).Round(100*time.Millisecond))

	// The wake-on-LAN hardware powers the machine on.
	v2 := bootVM(t, cfg, 5*time.Minute)
	m2 := v2.wait(t, registeredRe, 150*time.Second)
	if m2[1] != id {
		t.Fatalf("after the wake: registered node %s, want %s", m2[1], id)
	}
	testutil.Eventually(t, 30*time.Second, "the node to show up", func() (bool, error) {
		n := nodeRecord(t, e, id)
		return n.Power == registry.PowerUp && n.PowerTarget == registry.PowerUp, fmt.Errorf("power %q target %q", n.Power, n.PowerTarget)
	})
	t.Logf("wake: request to registered again %s", time.Since(t1).Round(100*time.Millisecond))
	v2.powerdown(t, 60*time.Second)
}
