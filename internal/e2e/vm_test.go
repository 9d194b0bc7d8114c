package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/image/kernel"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/node/vm/vmtest"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/qemu"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// requireVMPrereqs skips (fails when strict) without what VMs need.
func requireVMPrereqs(t testing.TB) string {
	t.Helper()
	requireNodePrereqs(t)
	testutil.RequireBinary(t, "qemu-system-x86_64")
	testutil.RequireBinary(t, "busybox")
	testutil.RequireFile(t, "/dev/net/tun")
	testutil.RequireFile(t, qemu.DefaultVirtiofsd)
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(wd, "..", "..", ".cache", "kernel")
	if debs, _ := filepath.Glob(filepath.Join(cache, "linux-image-*-amd64_*.deb")); len(debs) == 0 {
		testutil.Skip(t, "no Debian kernel in "+cache+" (make deps)")
	}
	return cache
}

// VMScript is the demo VM's entrypoint: it counts its boots on the disk
// at /data, writes to the shared volume and lists it, then prints the
// marker (last, so a test that sees the marker sees the rest) and stays up.
const VMScript = `#!/bin/sh
echo "boot" >> /data/boots
echo "hello from $(hostname)" > /shared/hello
ls /shared
sync
echo "zos-vm-up boots=$(wc -l < /data/boots) ip=$(ip -4 -o addr show eth0 | awk '{print $4}')"
exec sleep 2147483647
`

// MeshScript pings $PEER until it answers and says so.
const MeshScript = `#!/bin/sh
echo "mesh-vm up"
if [ -n "$PEER" ]; then
	for i in $(seq 1 90); do
		if ping -c 1 -W 1 "$PEER" >/dev/null 2>&1; then echo "PEER-OK $PEER"; break; fi
		sleep 1
	done
fi
exec sleep 2147483647
`

// buildRootfs makes a busybox root filesystem with the entrypoints.
func buildRootfs(t testing.TB, dir string) {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "data", "shared"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "echo", "cat", "ls", "wc", "ip", "awk", "sleep", "sync", "hostname", "ping", "mount", "df", "seq"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "start.sh"), []byte(VMScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mesh.sh"), []byte(MeshScript), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// busyboxFlist publishes the busybox root of buildRootfs as flist name.
func busyboxFlist(t testing.TB, u *user, name string) string {
	t.Helper()
	root := t.TempDir()
	buildRootfs(t, root)
	return publishFlist(t, u, root, name)
}

// vmWorld is a grid with one node that runs VMs (tcg) and a user.
func vmWorld(t testing.TB) (*node, *user) {
	t.Helper()
	cache := requireVMPrereqs(t)
	g := startGrid(t)
	n := vmNode(t, g, newUser(t, g), cache)
	return n, newUser(t, g)
}

// publishFlist builds dir into a flist on the grid's hub and returns its URL.
func publishFlist(t testing.TB, u *user, dir, name string) string {
	t.Helper()
	fl := filepath.Join(t.TempDir(), name+".fl")
	u.mustRun("flist", "build", dir, "-o", fl, "--store", u.grid.hub)
	out := u.mustRun("flist", "push", fl, "--hub", u.grid.hub)
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, u.grid.hub+"/") {
			return strings.Fields(l)[0]
		}
	}
	t.Fatalf("flist push printed no URL: %q", out)
	return ""
}

// vmNode starts a node that runs VMs (tcg) in a grid with a farm.
func vmNode(t testing.TB, g *grid, farmer *user, cache string, extra ...string) *node {
	t.Helper()
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	bin := buildBinaries(t)
	// Taps outlive a node that stops with VMs running: remove the ones
	// this test made (after the node's own cleanup, which runs first).
	// Tap names do not say whose they are: a tap with carrier is held by
	// a running QEMU, another test's (tests of other packages, or of
	// other trees, run VMs on the machine at the same time); ours were
	// killed by the node's cleanup.
	before, _ := rtnl.Links("", "t-")
	t.Cleanup(func() {
		now, _ := rtnl.Links("", "t-")
		for _, l := range now {
			if !slices.Contains(before, l) && !tapInUse(l) {
				rtnl.DeleteLink("", l)
			}
		}
	})
	n := startNode(t, g, farmer.farmToken(farm.ID), append([]string{"--vm-kernel", cache, "--vminit", filepath.Join(bin, "vminit"), "--accel", "tcg"}, extra...)...)
	n.waitRegistered(farmer)
	return n
}

// console waits until the VM's console log, read with zosctl logs,
// matches re, and returns the log.
func waitConsole(t testing.TB, u *user, contract uint64, vm string, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	var out string
	// Every second at most: each try is a call through the grid.
	if err := testutil.PollEvery(timeout, time.Second, func() (bool, error) {
		var code int
		out, _, code = u.run("logs", strconv.FormatUint(contract, 10), vm)
		return code == 0 && re.MatchString(out), nil
	}); err != nil {
		t.Fatalf("console of %s never matched %s (%v); last log:\n%s", vm, re, err, out)
	}
	return out
}

// tapInUse reports whether a process (QEMU) holds tap open: it has
// carrier then.
func tapInUse(tap string) bool {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", tap, "carrier"))
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

func qemuPid(t testing.TB, name string) int {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "-x", ".*qemu-system-x86_64 -name "+regexp.QuoteMeta(name)+" .*").Output()
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.Fields(string(out))[0])
	return pid
}

// TestVMLifecycle deploys a container-mode VM through the grid with
// zosctl: its entrypoint runs, it answers ping on its private IP, its
// disk at /data survives a crash restart, it sees its shared volume, its
// log is readable with zosctl logs; a node restart adopts it without a
// reboot; canceling removes QEMU, tap, virtiofsd and the root volume.
func TestVMLifecycle(t *testing.T) {
	n, u := vmWorld(t)
	url := busyboxFlist(t, u, "busybox")
	id := strconv.Itoa(int(n.id))

	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.30.0.0/16")
	var d gridtypes.Deployment
	u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/start.sh", "--disk", "1G:/data", "--volume", "100M:/shared")
	contract := d.ContractID
	wlid := d.WorkloadID("vm")
	vmName := primitives.VMName(wlid)
	var res gridtypes.ZMachineResult
	if err := d.Get("vm").Result.Unmarshal(&res); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr(res.IP)
	tap := (&primitives.ZMachineManager{Prefix: n.prefix()}).TapName(wlid)

	log1 := waitConsole(t, u, contract, "vm", regexp.MustCompile(`zos-vm-up boots=1 ip=`+regexp.QuoteMeta(ip.String())), 90*time.Second)
	t.Logf("console:\n%s", log1)
	if !strings.Contains(log1, "hello") {
		t.Errorf("the VM did not list its shared volume:\n%s", log1)
	}
	hello, _ := filepath.Glob(filepath.Join(n.data, "mnt", "*", string(d.WorkloadID("vmvol0")), "hello"))
	if len(hello) != 1 {
		t.Errorf("the file the VM wrote to its volume is not on the node's volume: %v", hello)
	}
	nrNS := network.NamesOf(n.prefix(), gridtypes.NetID(d.TwinID, "net")).NS
	if ok, out := pingRetry(nrNS, ip); !ok {
		t.Errorf("the network resource cannot ping the VM at %s: %s", ip, out)
	}

	// Killing QEMU: the node restarts the VM, the disk keeps its data.
	pid := qemuPid(t, vmName)
	if pid == 0 {
		t.Fatal("no QEMU process for the VM")
	}
	if err := exec.Command("kill", "-9", strconv.Itoa(pid)).Run(); err != nil {
		t.Fatal(err)
	}
	waitConsole(t, u, contract, "vm", regexp.MustCompile(`zos-vm-up boots=2`), 120*time.Second)
	pid = qemuPid(t, vmName)

	// A node restart adopts the running VM: same QEMU, no new boot, and
	// its tap joins the rebuilt bridge again.
	n.stop()
	if !processAlive(pid) {
		t.Fatal("stopping the node stopped the VM")
	}
	n.start()
	n.waitRegistered(u)
	waitFor(t, 60*time.Second, "the network to come back", func() bool { return netns.Exists(nrNS) })
	if ok, out := pingRetry(nrNS, ip); !ok {
		t.Errorf("after a node restart, the network resource cannot ping the VM at %s: %s", ip, out)
	}
	if got := qemuPid(t, vmName); got != pid {
		t.Errorf("after a node restart the VM runs as pid %d, want the adopted %d", got, pid)
	}
	if log := u.mustRun("logs", strconv.FormatUint(contract, 10), "vm"); strings.Contains(log, "boots=3") {
		t.Errorf("the VM rebooted with the node:\n%s", log)
	}

	// Cancel: everything of the VM goes.
	u.mustRun("deployment", "cancel", strconv.FormatUint(contract, 10))
	waitFor(t, 60*time.Second, "QEMU to stop", func() bool { return qemuPid(t, vmName) == 0 })
	waitFor(t, 30*time.Second, "the tap to go", func() bool { return !rtnl.LinkExists("", tap) })
	if out, _ := exec.Command("pgrep", "-f", "virtiofsd.*"+regexp.QuoteMeta(string(wlid))).Output(); len(out) > 0 {
		t.Errorf("virtiofsd still runs for the VM: %s", out)
	}
	waitFor(t, 30*time.Second, "the root volume to go", func() bool {
		m, _ := filepath.Glob(filepath.Join(n.data, "mnt", "*", "rootfs-"+string(wlid)))
		return len(m) == 0
	})
}

func processAlive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}

// waitFor is testutil.Eventually for a condition without a reason, checked
// every 200ms at most (several exec a process: pgrep, redis-cli).
func waitFor(t testing.TB, timeout time.Duration, what string, f func() bool) {
	t.Helper()
	if err := testutil.PollEvery(timeout, 200*time.Millisecond, func() (bool, error) { return f(), nil }); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// TestVMBadInput: an flist that is not a root filesystem, an entrypoint
// that does not exist, an image.raw larger than its disk and a kernel that
// cannot boot each end in a clear workload error, leave nothing behind,
// and a VM already running on the node is unaffected.
func TestVMBadInput(t *testing.T) {
	n, u := vmWorld(t)
	id := strconv.Itoa(int(n.id))
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.32.0.0/16")

	good := busyboxFlist(t, u, "good")
	var d gridtypes.Deployment
	u.json(&d, "deploy", "vm", "--node", id, "--flist", good, "--network", "net", "--memory", "256M",
		"--entrypoint", "/start.sh", "--disk", "200M:/data", "--volume", "10M:/shared", "--name", "good")
	waitConsole(t, u, d.ContractID, "good", regexp.MustCompile(`zos-vm-up boots=1`), 90*time.Second)

	notRoot := t.TempDir()
	if err := os.WriteFile(filepath.Join(notRoot, "README"), []byte("just a file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tooBig := t.TempDir()
	if err := os.WriteFile(filepath.Join(tooBig, "image.raw"), make([]byte, 60<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	badKernel := t.TempDir()
	buildRootfs(t, badKernel)
	if err := os.MkdirAll(filepath.Join(badKernel, "boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(badKernel, "boot", "vmlinuz"), []byte("not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		flist string
		args  []string
		want  string
	}{
		{"notroot", publishFlist(t, u, notRoot, "notroot"), nil, "not a root filesystem"},
		{"noentry", good, []string{"--entrypoint", "/no/such/program"}, "no such file in the flist"},
		{"toobig", publishFlist(t, u, tooBig, "toobig"), []string{"--disk", "50M:/data"}, "larger than disk"},
		{"nokernel", publishFlist(t, u, badKernel, "badkernel"), nil, "vm"},
	}
	for i, c := range cases {
		args := append([]string{"deploy", "vm", "--node", id, "--flist", c.flist, "--network", "net", "--memory", "256M",
			"--name", c.name, "--ip", fmt.Sprintf("10.32.2.%d", 20+i)}, c.args...)
		out, errs, code := u.run(args...)
		if code == 0 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: got exit %d, want an error about %q:\n%s%s", c.name, code, c.want, out, errs)
		}
		wlid := gridtypes.NewWorkloadID(d.TwinID, d.ContractID+uint64(i)+1, c.name)
		if pid := qemuPid(t, primitives.VMName(wlid)); pid != 0 {
			t.Errorf("%s: a QEMU process (%d) is left", c.name, pid)
		}
		if m, _ := filepath.Glob(filepath.Join(n.data, "mnt", "*", "rootfs-"+string(wlid))); len(m) > 0 {
			t.Errorf("%s: its root volume is left: %v", c.name, m)
		}
	}
	// The good VM still runs: same boot, still answers.
	nrNS := network.NamesOf(n.prefix(), gridtypes.NetID(d.TwinID, "net")).NS
	var res gridtypes.ZMachineResult
	if err := d.Get("good").Result.Unmarshal(&res); err != nil {
		t.Fatal(err)
	}
	if ok, out := pingRetry(nrNS, netip.MustParseAddr(res.IP)); !ok {
		t.Errorf("the good VM stopped answering: %s", out)
	}
	if log := u.mustRun("logs", strconv.FormatUint(d.ContractID, 10), "good"); strings.Contains(log, "boots=2") {
		t.Errorf("the good VM rebooted:\n%s", log)
	}
	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	waitFor(t, 60*time.Second, "the good VM to stop", func() bool {
		return qemuPid(t, primitives.VMName(gridtypes.NewWorkloadID(d.TwinID, d.ContractID, "good"))) == 0
	})
}

// TestVMFullImage deploys a full VM: a flist whose /image.raw (MBR,
// syslinux, the Debian kernel and an initramfs printing a marker) is
// written to the VM's first zmount and booted from it by the firmware.
func TestVMFullImage(t *testing.T) {
	cache := requireVMPrereqs(t)
	debs, _ := filepath.Glob(filepath.Join(cache, "linux-image-*-amd64_*.deb"))
	k, err := kernel.Open(context.Background(), debs[0])
	if err != nil {
		t.Fatal(err)
	}
	n, u := vmWorld(t)
	id := strconv.Itoa(int(n.id))
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.33.0.0/16")

	const marker = "zos-full-vm-booted"
	initrd := vmtest.MarkerInitramfs(t, k.ModulesDir(), "#!/bin/busybox sh\n/bin/busybox echo "+marker+"\nexec /bin/busybox sleep 2147483647\n", nil)
	dir := t.TempDir()
	vmtest.BootableImage(t, k.BzImage, initrd, filepath.Join(dir, "image.raw"))
	url := publishFlist(t, u, dir, "fullvm")

	var d gridtypes.Deployment
	u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M", "--disk", "200M:/disk", "--name", "full")
	waitConsole(t, u, d.ContractID, "full", regexp.MustCompile(marker), 3*time.Minute)
	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	waitFor(t, 60*time.Second, "the VM to stop", func() bool {
		return qemuPid(t, primitives.VMName(d.WorkloadID("full"))) == 0
	})
}

// TestVMZLogs adds a zlogs workload to a running VM's deployment: the
// node streams the VM's console, from inside the user's network, to a
// redis server on that network.
func TestVMZLogs(t *testing.T) {
	redisServer := testutil.RequireBinary(t, "redis-server")
	redisCLI := testutil.RequireBinary(t, "redis-cli")
	n, u := vmWorld(t)
	url := busyboxFlist(t, u, "busybox")
	id := strconv.Itoa(int(n.id))
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.34.0.0/16")
	var d gridtypes.Deployment
	u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/start.sh", "--disk", "200M:/data", "--volume", "10M:/shared")
	waitConsole(t, u, d.ContractID, "vm", regexp.MustCompile(`zos-vm-up boots=1`), 90*time.Second)

	// A redis server on the network, at the resource's own address.
	nrNS := network.NamesOf(n.prefix(), gridtypes.NetID(d.TwinID, "net")).NS
	gw := "10.34.2.1"
	port := strconv.Itoa(testutil.FreePort(t))
	srv := exec.Command("ip", "netns", "exec", nrNS, redisServer, "--bind", gw, "--port", port, "--save", "", "--appendonly", "no", "--protected-mode", "no")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	// stdbuf: redis-cli buffers its output when it is not a terminal.
	sub := exec.Command("ip", "netns", "exec", nrNS, "stdbuf", "-oL", redisCLI, "-h", gw, "-p", port, "SUBSCRIBE", "vmlogs")
	var got testutil.Buffer
	sub.Stdout = &got
	waitFor(t, 10*time.Second, "redis on the network", func() bool {
		return exec.Command("ip", "netns", "exec", nrNS, redisCLI, "-h", gw, "-p", port, "PING").Run() == nil
	})
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	waitFor(t, 10*time.Second, "the subscription", func() bool { return strings.Contains(got.String(), "subscribe") })

	zl := gridtypes.Workload{Name: "logs", Type: gridtypes.ZLogsType}
	if err := zl.SetData(&gridtypes.ZLogs{ZMachine: "vm", Output: "redis://" + gw + ":" + port + "/vmlogs"}); err != nil {
		t.Fatal(err)
	}
	d.Workloads = append(d.Workloads, zl)
	u.mustRun("deployment", "update", "-f", writeJSON(t, &d), strconv.FormatUint(d.ContractID, 10))
	if testutil.Poll(30*time.Second, func() (bool, error) { return strings.Contains(got.String(), "zos-vm-up boots=1"), nil }) != nil {
		stats, _ := exec.Command("ip", "netns", "exec", nrNS, redisCLI, "-h", gw, "-p", port, "INFO", "commandstats").CombinedOutput()
		t.Fatalf("the console line never reached the redis channel within 30s; subscriber got %q; server stats:\n%s", got.String(), stats)
	}
	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
}

// TestVMMesh runs a VM on each of two nodes in network namespaces (a farm
// LAN, the nodes public) on one private network: the VMs reach each other
// through the nodes' WireGuard mesh, and QEMU runs in the node's namespace.
func TestVMMesh(t *testing.T) {
	cache := requireVMPrereqs(t)
	testutil.RequireBinary(t, "nft")
	lab := netlab.New(t, 2)
	g := startGrid(t)
	farmer := newUser(t, g)
	var nodes []*node
	for _, ln := range lab.Nodes {
		nodes = append(nodes, vmNode(t, g, farmer, cache, "--netns", ln.NS))
	}
	fd := dial(t, farmer)
	for i, n := range nodes {
		pc := &registry.PublicConfig{IPv4: netip.PrefixFrom(lab.Nodes[i].IP, 24).String(), GW4: netlab.LANGateway.String()}
		if err := fd.reg.SetPublicConfig(context.Background(), n.id, pc); err != nil {
			t.Fatal(err)
		}
	}
	u := newUser(t, g)
	url := busyboxFlist(t, u, "mesh")
	ids := []string{strconv.Itoa(int(nodes[0].id)), strconv.Itoa(int(nodes[1].id))}
	u.mustRun("network", "create", "--name", "net", "--nodes", strings.Join(ids, ","), "--ip-range", "10.35.0.0/16")

	var b, a gridtypes.Deployment
	u.json(&b, "deploy", "vm", "--node", ids[1], "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/mesh.sh", "--name", "b")
	var bres gridtypes.ZMachineResult
	if err := b.Get("b").Result.Unmarshal(&bres); err != nil {
		t.Fatal(err)
	}
	u.json(&a, "deploy", "vm", "--node", ids[0], "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/mesh.sh", "--name", "a", "--env", "PEER="+bres.IP)
	waitConsole(t, u, b.ContractID, "b", regexp.MustCompile(`mesh-vm up`), 90*time.Second)
	t.Log(waitConsole(t, u, a.ContractID, "a", regexp.MustCompile(`PEER-OK `+regexp.QuoteMeta(bres.IP)), 2*time.Minute))
	for _, d := range []gridtypes.Deployment{a, b} {
		u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	}
}

// TestVMPublicIP gives a VM one of the farm's public IPs on a node in a
// network namespace with an uplink: the farm LAN reaches the VM on it, the
// VM reaches the internet through it, and its private network still works.
func TestVMPublicIP(t *testing.T) {
	cache := requireVMPrereqs(t)
	testutil.RequireBinary(t, "nft")
	lab := netlab.New(t, 1)
	g := startGrid(t)
	farmer := newUser(t, g)
	n := vmNode(t, g, farmer, cache, "--netns", lab.Nodes[0].NS)
	fd := dial(t, farmer)
	nodeRec, err := fd.reg.Node(context.Background(), n.id)
	if err != nil {
		t.Fatal(err)
	}
	pc := &registry.PublicConfig{IPv4: netip.PrefixFrom(lab.Nodes[0].IP, 24).String(), GW4: netlab.LANGateway.String()}
	if err := fd.reg.SetPublicConfig(context.Background(), n.id, pc); err != nil {
		t.Fatal(err)
	}
	const public = "10.99.0.200"
	farmer.mustRun("farm", "add-ip", "--farm", strconv.Itoa(int(nodeRec.FarmID)), public+"/24", "--gw", netlab.LANGateway.String())

	u := newUser(t, g)
	url := busyboxFlist(t, u, "pub")
	id := strconv.Itoa(int(n.id))
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.36.0.0/16")
	var d gridtypes.Deployment
	u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/mesh.sh", "--env", "PEER="+netlab.InternetHost.String(), "--public-ip")
	var ipr gridtypes.PublicIPResult
	if err := d.Get("vmpip").Result.Unmarshal(&ipr); err != nil || ipr.IP.String() != public+"/24" {
		t.Fatalf("ip workload result: %+v %v", ipr, err)
	}
	waitConsole(t, u, d.ContractID, "vm", regexp.MustCompile(`PEER-OK `+regexp.QuoteMeta(netlab.InternetHost.String())), 2*time.Minute)
	if ok, out := pingRetry(lab.Internet, netip.MustParseAddr(public)); !ok {
		t.Errorf("the internet cannot ping the VM's public IP: %s", out)
	}
	var res gridtypes.ZMachineResult
	if err := d.Get("vm").Result.Unmarshal(&res); err != nil {
		t.Fatal(err)
	}
	nrNS := network.NamesOf(n.prefix(), gridtypes.NetID(d.TwinID, "net")).NS
	if ok, out := pingRetry(nrNS, netip.MustParseAddr(res.IP)); !ok {
		t.Errorf("the private network cannot ping the VM: %s", out)
	}
	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	waitFor(t, 60*time.Second, "the public tap to go", func() bool {
		return !rtnl.LinkExists(lab.Nodes[0].NS, network.PublicTap(d.WorkloadID("vmpip")))
	})
}
