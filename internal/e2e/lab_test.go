package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/lab"
	"github.com/zos-go/zos/internal/testutil"
)

// PeersScript pings every address of $PEERS until it answers, says so,
// and says ALL-PEERS-OK once every peer answered.
const PeersScript = `#!/bin/sh
echo "peers-vm up"
for p in $PEERS; do
	for i in $(seq 1 120); do
		if ping -c 1 -W 1 "$p" >/dev/null 2>&1; then echo "PEER-OK $p"; break; fi
		sleep 1
	done
done
echo "ALL-PEERS-OK"
exec sleep 2147483647
`

// TestLab is the lab scenario: `zgrid lab up --nodes 3` with VMs
// enabled (tcg), a tenant's network over the three nodes, a VM on each
// that pings the two others over the network (WireGuard across the farm
// LAN); then `zgrid lab down` stops the lab and leaves no namespace (with
// them the links and taps), mount, loop device or process, and says so
// clearly when asked again. About 40 s here.
func TestLab(t *testing.T) {
	cache := requireVMPrereqs(t)
	testutil.RequireBinary(t, "nft")
	bin := buildBinaries(t)
	// Short: VM sockets live under it (lab.Config.Validate).
	dir, err := os.MkdirTemp("", "zl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	start := time.Now()
	up := startLab(t, bin, dir, 3, "--node-arg=--vm-kernel="+cache, "--node-arg=--vminit="+filepath.Join(bin, "vminit"), "--node-arg=--accel=tcg")
	st, err := lab.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab ready in %v", time.Since(start))
	if !strings.Contains(up.output(), "export ZOS_GRID="+st.Grid) {
		t.Errorf("lab up does not say how to use it:\n%s", up.output())
	}
	var ids []string
	for i, n := range st.Nodes {
		if n.ID == 0 {
			t.Fatalf("lab ready without node %d's id: %+v", i+1, st.Nodes)
		}
		ids = append(ids, strconv.Itoa(int(n.ID)))
	}

	g := &grid{url: st.Grid, hub: "http://" + st.Hub}
	u := newUser(t, g)
	root := t.TempDir()
	buildRootfs(t, root)
	if err := os.WriteFile(filepath.Join(root, "peers.sh"), []byte(PeersScript), 0o755); err != nil {
		t.Fatal(err)
	}
	url := publishFlist(t, u, root, "peers")
	u.mustRun("network", "create", "--name", "net", "--nodes", strings.Join(ids, ","), "--ip-range", "10.36.0.0/16")
	// Subnets are given in node order from x.x.2.0.
	ipOf := func(i int) string { return fmt.Sprintf("10.36.%d.2", 2+i) }
	deployed := time.Now()
	contracts := make([]uint64, len(ids))
	for i, id := range ids {
		var peers []string
		for j := range ids {
			if j != i {
				peers = append(peers, ipOf(j))
			}
		}
		var d gridtypes.Deployment
		u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--ip", ipOf(i), "--memory", "256M",
			"--entrypoint", "/peers.sh", "--name", "vm"+strconv.Itoa(i+1), "--env", "PEERS="+strings.Join(peers, " "))
		contracts[i] = d.ContractID
	}
	for i, c := range contracts {
		waitConsole(t, u, c, "vm"+strconv.Itoa(i+1), regexp.MustCompile(`ALL-PEERS-OK`), 5*time.Minute)
	}
	t.Logf("3 VMs deployed and each reached both others in %v", time.Since(deployed))

	down := func() (string, error) {
		out, err := exec.Command(filepath.Join(bin, "zgrid"), "lab", "down", "--dir", dir).CombinedOutput()
		return string(out), err
	}
	if out, err := down(); err != nil {
		t.Fatalf("zgrid lab down: %v\n%s", err, out)
	}
	select {
	case <-up.done:
	case <-time.After(10 * time.Second):
		t.Fatal("zgrid lab up still runs after lab down")
	}
	left, err := lab.Find(dir, st.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !left.Empty() {
		t.Fatalf("left after lab down: %s", left)
	}
	if _, err := os.Stat(filepath.Join(dir, lab.StateFile)); !os.IsNotExist(err) {
		t.Fatalf("state file after lab down: got %v, want it removed", err)
	}
	if out, err := down(); err == nil || !strings.Contains(out, "no lab") {
		t.Fatalf("lab down twice: got %v\n%s, want a clear 'no lab' error", err, out)
	}
}

// startLab runs `zgrid lab up --nodes n --dir dir` and waits until it is
// ready; at cleanup the lab is taken down if it still is.
func startLab(t testing.TB, bin, dir string, n int, extra ...string) *proc {
	t.Helper()
	up := start(t, filepath.Join(bin, "zgrid"), append([]string{"lab", "up", "--nodes", strconv.Itoa(n), "--dir", dir, "--ssd", "8G", "--hdd", "2G"}, extra...)...)
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, lab.StateFile)); err == nil {
			if out, err := exec.Command(filepath.Join(bin, "zgrid"), "lab", "down", "--dir", dir).CombinedOutput(); err != nil {
				t.Errorf("lab down at cleanup: %v\n%s", err, out)
			}
		}
		up.stop(30 * time.Second)
		if t.Failed() {
			t.Logf("zgrid lab up output:\n%s", up.output())
			for i := range n {
				b, _ := os.ReadFile(filepath.Join(dir, "node"+strconv.Itoa(i+1)+".log"))
				t.Logf("node %d log:\n%s", i+1, b)
			}
		}
	})
	if err := testutil.Poll(3*time.Minute, func() (bool, error) {
		select {
		case <-up.done:
			t.Fatalf("zgrid lab up exited:\n%s", up.output())
		default:
		}
		return strings.Contains(up.output(), "lab_ready"), nil
	}); err != nil {
		t.Fatalf("lab not ready: %v\n%s", err, up.output())
	}
	return up
}
