package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// buildZos links zos stamped with version v into a directory of its own.
func buildZos(t *testing.T, v string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "zos")
	cmd := exec.Command("go", "build", "-ldflags", "-X github.com/zos-go/zos/internal/version.Version="+v, "-o", out, "github.com/zos-go/zos/cmd/zos")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building zos %s: %v\n%s", v, err, b)
	}
	return out
}

// apiWatch calls the node's API (zos.system.version) every 50 ms over
// the relay and keeps the longest stretch in which no call succeeded.
type apiWatch struct {
	mu      sync.Mutex
	lastOK  time.Time
	longest time.Duration
	version string
}

func (w *apiWatch) run(ctx context.Context, c *direct, nodeTwin uint32) {
	w.lastOK = time.Now()
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		var v nodeapi.Version
		err := c.rmb.Call(cctx, nodeTwin, nodeapi.CmdVersion, nil, &v)
		cancel()
		now := time.Now()
		w.mu.Lock()
		if err == nil {
			w.longest = max(w.longest, now.Sub(w.lastOK))
			w.lastOK, w.version = now, v.ZOS
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// reset starts a new measure.
func (w *apiWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.longest = 0
}

func (w *apiWatch) gap() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.longest
}

// TestLiveUpdate: a hosted node running v1.0.0 follows the testing channel
// of the grid's hub. v1.1.0 is published: the node installs it, execs it
// (same pid), the new version passes its health gate and the grid shows
// it; a 0-db namespace keeps its data. Then v1.2.0, broken (it says its
// version but exits at start), is published: the node switches, the trial
// dies, the guard marks it failed and starts v1.1.0 again; the grid shows
// v1.1.0 with v1.2.0 failed, and v1.2.0 is not tried again.
func TestLiveUpdate(t *testing.T) {
	requireNodePrereqs(t)
	v1, v2 := buildZos(t, "v1.0.0"), buildZos(t, "v1.1.0")
	g := startGridIn(t, t.TempDir(), "--release-twins", "1")
	manager := newUser(t, g)
	var tw registry.Twin
	manager.json(&tw, "twin", "show")
	if tw.ID != 1 {
		t.Fatalf("the release manager is twin %d, want 1 (the first twin of a new grid)", tw.ID)
	}
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))

	repo := filepath.Join(t.TempDir(), "releases")
	manager.mustRun("release", "init", repo)
	publish := func(v, zos string) {
		manager.mustRun("release", "add", repo, "--channel", "testing", "--version", v, "zos="+zos)
		manager.mustRun("release", "sign", repo)
		manager.mustRun("release", "publish", repo, "--hub", g.hub)
	}

	// The node, started from v1.0.0 as the harness starts nodes.
	n := &node{t: t, data: t.TempDir(), zdbPort: testutil.FreePort(t)}
	n.args = []string{"node", "--data", n.data, "--grid", g.url, "--farm-token", farmer.farmToken(farm.ID),
		"--disk", "ssd:8G", "--disk", "hdd:3G", "--zdb-port", strconv.Itoa(n.zdbPort), "--uptime-every", "2s",
		"--resync-every", "3s", "--prefix", fmt.Sprintf("t%d", n.zdbPort), "--reserved-mem", "256M",
		"--update-hub", g.hub, "--update-root", filepath.Join(repo, "root.json"), "--update-channel", "testing",
		"--update-every", "1s", "--update-gate", "60s"}
	n.proc = start(t, v1, n.args...)
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("node output:\n%s", n.proc.output())
		}
		// After the rollback the node runs under the guard, not the harness.
		cleanupNode(t, n.data)
	})
	n.waitRegistered(farmer)
	pid := n.proc.cmd.Process.Pid
	show := func() registry.Node {
		var rec registry.Node
		farmer.json(&rec, "node", "show", strconv.Itoa(int(n.id)))
		return rec
	}
	if rec := show(); rec.Version != "v1.0.0" {
		t.Fatalf("the grid shows version %q, want v1.0.0", rec.Version)
	}

	// A 0-db namespace with data: it must survive both switches.
	u := newUser(t, g)
	var d gridtypes.Deployment
	u.json(&d, "deploy", "zdb", "--node", strconv.Itoa(int(n.id)), "--size", "64M", "--password", "pw", "--name", "db")
	ns := zdbResult(t, &d, "db").Namespace
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\nSET k kept\n", ns)); !strings.Contains(out, "OK") {
		t.Fatalf("zdb write: %s", out)
	}

	c := dial(t, u)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watch := &apiWatch{}
	go watch.run(ctx, c, show().TwinID)

	// N -> N+1.
	publish("v1.1.0", v2)
	published := time.Now()
	testutil.Eventually(t, 90*time.Second, "the grid shows v1.1.0", func() (bool, error) {
		return show().Version == "v1.1.0" && strings.Contains(n.proc.output(), "update_confirmed"), nil
	})
	t.Logf("FIGURE publish_to_confirmed=%s api_unreachable_max=%s", time.Since(published).Round(time.Millisecond), watch.gap().Round(time.Millisecond))
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the node's pid %d is gone after the update: %v", pid, err)
	}
	select {
	case <-n.proc.done:
		t.Fatal("the node process exited during the update")
	default:
	}
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\nGET k\n", ns)); !strings.Contains(out, "kept") {
		t.Fatalf("zdb data after the update: %q", out)
	}
	if line := logLine(n.proc.output(), "update_confirmed"); line != "" {
		t.Logf("FIGURE %s", line)
	}
	// The watch reaches the new version through the API (it measures).
	testutil.Eventually(t, 10*time.Second, "the API answers v1.1.0", func() (bool, error) {
		watch.mu.Lock()
		defer watch.mu.Unlock()
		return watch.version == "v1.1.0", nil
	})
	if gap := watch.gap(); gap > 10*time.Second {
		t.Errorf("the node API was unreachable for %s during the switch", gap)
	}

	// N+1 -> broken N+2 -> back to N+1.
	broken := filepath.Join(t.TempDir(), "zos")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nif [ \"$1\" = version ]; then echo v1.2.0; exit 0; fi\necho broken zos exits at start >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	watch.reset()
	publish("v1.2.0", broken)
	published = time.Now()
	testutil.Eventually(t, 120*time.Second, "the grid shows v1.2.0 failed", func() (bool, error) {
		rec := show()
		return rec.Version == "v1.1.0" && slices.Contains(rec.UpdateFailed, "v1.2.0"), nil
	})
	t.Logf("FIGURE publish_broken_to_failed_shown=%s api_unreachable_max=%s", time.Since(published).Round(time.Millisecond), watch.gap().Round(time.Millisecond))
	if !n.proc.logged("update_trial_died") {
		t.Errorf("no update_trial_died in the log")
	}
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw\nGET k\n", ns)); !strings.Contains(out, "kept") {
		t.Fatalf("zdb data after the rollback: %q", out)
	}
	// Not tried again: the node stays on v1.1.0 for three more checks.
	tries := strings.Count(n.proc.output(), "update_switching")
	skips := strings.Count(n.proc.output(), "update_skipped_failed")
	testutil.Eventually(t, 30*time.Second, "three checks skip v1.2.0", func() (bool, error) {
		return strings.Count(n.proc.output(), "update_skipped_failed") >= skips+3, nil
	})
	if got := strings.Count(n.proc.output(), "update_switching"); got != tries {
		t.Errorf("the node switched again after v1.2.0 failed (%d switches, was %d)", got, tries)
	}
	for _, l := range strings.Split(n.proc.output(), "\n") {
		if strings.Contains(l, "update_") && !strings.Contains(l, "update_skipped_failed") {
			t.Log(strings.TrimSpace(l))
		}
	}
	stopUnder(t, n.data)
}

// logLine returns the first log line holding s.
func logLine(out, s string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// stopUnder stops (SIGTERM, then waits) the zos node processes of dir: the
// one the guard restarted is not the harness's child.
func stopUnder(t *testing.T, dir string) {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		b, err := os.ReadFile(c)
		if err != nil || !strings.Contains(string(b), "\x00node\x00") || !strings.Contains(string(b), dir) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, syscall.SIGTERM) == nil {
			_ = testutil.Poll(30*time.Second, func() (bool, error) { return syscall.Kill(pid, 0) != nil, nil })
		}
	}
}

// TestUpdateKill9: the node (and its update guard) is killed -9 at each
// step of an update: right after the new slot is installed and the state
// names the trial, as it execs the trial, and once the trial is
// confirmed. Started again from its installed binary, it always comes back
// on a complete, verified version (the new one if it was confirmed, else
// the one before), and an interrupted trial is tried once more.
func TestUpdateKill9(t *testing.T) {
	requireNodePrereqs(t)
	steps := []struct{ marker, version string }{
		{"update_switching", "v1.1.0"},
		{"update_exec", "v1.2.0"},
		{"update_confirmed", "v1.3.0"},
	}
	v1 := buildZos(t, "v1.0.0")
	bins := map[string]string{}
	for _, s := range steps {
		bins[s.version] = buildZos(t, s.version)
	}
	g := startGridIn(t, t.TempDir(), "--release-twins", "1")
	manager := newUser(t, g)
	var tw registry.Twin
	manager.json(&tw, "twin", "show")
	if tw.ID != 1 {
		t.Fatalf("the release manager is twin %d, want 1 (the first twin of a new grid)", tw.ID)
	}
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	repo := filepath.Join(t.TempDir(), "releases")
	manager.mustRun("release", "init", repo)

	n := &node{t: t, data: t.TempDir(), zdbPort: testutil.FreePort(t)}
	n.args = []string{"node", "--data", n.data, "--grid", g.url, "--farm-token", farmer.farmToken(farm.ID),
		"--disk", "ssd:8G", "--disk", "hdd:3G", "--zdb-port", strconv.Itoa(n.zdbPort), "--uptime-every", "2s",
		"--resync-every", "3s", "--prefix", fmt.Sprintf("t%d", n.zdbPort), "--reserved-mem", "256M",
		"--update-hub", g.hub, "--update-root", filepath.Join(repo, "root.json"), "--update-channel", "testing",
		"--update-every", "1s", "--update-gate", "60s"}
	n.proc = start(t, v1, n.args...)
	t.Cleanup(func() {
		stopUnder(t, n.data)
		n.stop()
		if t.Failed() {
			t.Logf("node output:\n%s%s", n.earlier, n.proc.output())
		}
		cleanupNode(t, n.data)
	})
	n.waitRegistered(farmer)
	show := func() registry.Node {
		var rec registry.Node
		farmer.json(&rec, "node", "show", strconv.Itoa(int(n.id)))
		return rec
	}
	running := "v1.0.0"
	for _, s := range steps {
		before := strings.Count(n.proc.output(), s.marker)
		manager.mustRun("release", "add", repo, "--channel", "testing", "--version", s.version, "zos="+bins[s.version])
		manager.mustRun("release", "sign", repo)
		manager.mustRun("release", "publish", repo, "--hub", g.hub)
		if err := testutil.PollEvery(60*time.Second, 5*time.Millisecond, func() (bool, error) {
			return strings.Count(n.proc.output(), s.marker) > before, nil
		}); err != nil {
			t.Fatalf("%s: no %s: %v", s.version, s.marker, err)
		}
		n.crash()
		stopUnder(t, n.data) // a node the guard started, if it got that far
		n.earlier += n.proc.output() + "        --- node killed -9 at " + s.marker + " ---\n"
		n.proc = start(t, v1, n.args...)
		// Back on a complete version at once (the one before, or the new one
		// if it was confirmed), then on the new one: an interrupted trial
		// is tried again.
		testutil.Eventually(t, 90*time.Second, "the node registered again", func() (bool, error) {
			return strings.Contains(n.proc.output(), "node_registered"), nil
		})
		rec := show()
		if rec.Version != running && rec.Version != s.version {
			t.Fatalf("%s: back on %q, want %s or %s", s.marker, rec.Version, running, s.version)
		}
		testutil.Eventually(t, 90*time.Second, "the node on "+s.version, func() (bool, error) {
			rec = show()
			return rec.Version == s.version, nil
		})
		if slices.Contains(rec.UpdateFailed, s.version) {
			t.Fatalf("%s: %s recorded failed after one interruption", s.marker, s.version)
		}
		t.Logf("killed -9 at %s of %s: came back on a complete version, then on %s; interrupted trials: %d", s.marker, s.version, rec.Version,
			strings.Count(n.proc.output(), "update_trial_interrupted"))
		running = s.version
	}
}

// TestLiveUpdateKeepsVM: a VM running on a node that updates itself live
// keeps running through the exec: the same QEMU pid, no new boot.
func TestLiveUpdateKeepsVM(t *testing.T) {
	cache := requireVMPrereqs(t)
	v1, v2 := buildZos(t, "v1.0.0"), buildZos(t, "v1.1.0")
	bin := buildBinaries(t)
	g := startGridIn(t, t.TempDir(), "--release-twins", "1")
	manager := newUser(t, g)
	var tw registry.Twin
	manager.json(&tw, "twin", "show")
	if tw.ID != 1 {
		t.Fatalf("the release manager is twin %d, want 1 (the first twin of a new grid)", tw.ID)
	}
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	repo := filepath.Join(t.TempDir(), "releases")
	manager.mustRun("release", "init", repo)

	before, _ := rtnl.Links("", "t-")
	t.Cleanup(func() {
		now, _ := rtnl.Links("", "t-")
		for _, l := range now {
			if !slices.Contains(before, l) {
				rtnl.DeleteLink("", l)
			}
		}
	})
	n := &node{t: t, data: t.TempDir(), zdbPort: testutil.FreePort(t)}
	n.args = []string{"node", "--data", n.data, "--grid", g.url, "--farm-token", farmer.farmToken(farm.ID),
		"--disk", "ssd:8G", "--disk", "hdd:3G", "--zdb-port", strconv.Itoa(n.zdbPort), "--uptime-every", "2s",
		"--resync-every", "3s", "--prefix", fmt.Sprintf("t%d", n.zdbPort), "--reserved-mem", "256M", "--egress-allow", "loopback",
		"--vm-kernel", cache, "--vminit", filepath.Join(bin, "vminit"), "--accel", "tcg",
		"--update-hub", g.hub, "--update-root", filepath.Join(repo, "root.json"), "--update-channel", "testing",
		"--update-every", "1s", "--update-gate", "60s"}
	n.proc = start(t, v1, n.args...)
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("node output:\n%s", n.proc.output())
		}
		cleanupNode(t, n.data)
	})
	n.waitRegistered(farmer)
	id := strconv.Itoa(int(n.id))

	u := newUser(t, g)
	url := busyboxFlist(t, u, "busybox")
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.31.0.0/16")
	var d gridtypes.Deployment
	u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
		"--entrypoint", "/start.sh", "--disk", "1G:/data")
	vmName := primitives.VMName(d.WorkloadID("vm"))
	waitConsole(t, u, d.ContractID, "vm", regexp.MustCompile(`zos-vm-up boots=1`), 180*time.Second)
	pid := qemuPid(t, vmName)
	if pid == 0 {
		t.Fatal("no QEMU process for the VM")
	}

	manager.mustRun("release", "add", repo, "--channel", "testing", "--version", "v1.1.0", "zos="+v2)
	manager.mustRun("release", "sign", repo)
	manager.mustRun("release", "publish", repo, "--hub", g.hub)
	testutil.Eventually(t, 120*time.Second, "the update to v1.1.0 confirmed", func() (bool, error) {
		return strings.Contains(n.proc.output(), "update_confirmed"), nil
	})
	t.Logf("FIGURE %s", logLine(n.proc.output(), "update_confirmed"))
	if got := qemuPid(t, vmName); got != pid {
		t.Fatalf("after the live update the VM runs as pid %d, want %d", got, pid)
	}
	// The new version adopted it: its console is read through the new node.
	out := waitConsole(t, u, d.ContractID, "vm", regexp.MustCompile(`zos-vm-up boots=1`), 60*time.Second)
	if strings.Contains(out, "boots=2") {
		t.Fatalf("the VM rebooted with the update:\n%s", out)
	}
	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	waitFor(t, 60*time.Second, "QEMU to stop", func() bool { return qemuPid(t, vmName) == 0 })
}
