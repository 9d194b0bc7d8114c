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

// BenchmarkLabVMs is the lab scenario, too slow for make test
// under tcg: `zgrid lab up --nodes 3` with VMs enabled, a network over the
// three nodes, a VM on each that pings the two others over the network
// (WireGuard across the farm LAN), then `zgrid lab down` leaving nothing.
// It reports the time to a ready lab and from the first deploy until every
// VM reached both peers.
//
//	go test -run '^$' -bench LabVMs -benchtime 1x -timeout 30m ./internal/e2e
func BenchmarkLabVMs(b *testing.B) {
	cache := requireVMPrereqs(b)
	testutil.RequireBinary(b, "nft")
	bin := buildBinaries(b)
	for range b.N {
		dir := b.TempDir()
		start := time.Now()
		up := startLab(b, bin, dir, 3, "--node-arg=--vm-kernel="+cache, "--node-arg=--vminit="+filepath.Join(bin, "vminit"), "--node-arg=--accel=tcg")
		st, err := lab.ReadState(dir)
		if err != nil {
			b.Fatal(err)
		}
		ready := time.Since(start)
		g := &grid{url: st.Grid, hub: "http://" + st.Hub}
		u := newUser(b, g)
		root := b.TempDir()
		buildRootfs(b, root)
		if err := os.WriteFile(filepath.Join(root, "peers.sh"), []byte(PeersScript), 0o755); err != nil {
			b.Fatal(err)
		}
		url := publishFlist(b, u, root, "peers")
		var ids []string
		for _, n := range st.Nodes {
			ids = append(ids, strconv.Itoa(int(n.ID)))
		}
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
			b.Log(waitConsole(b, u, c, "vm"+strconv.Itoa(i+1), regexp.MustCompile(`ALL-PEERS-OK`), 5*time.Minute))
		}
		allPinged := time.Since(deployed)
		if out, err := exec.Command(filepath.Join(bin, "zgrid"), "lab", "down", "--dir", dir).CombinedOutput(); err != nil {
			b.Fatalf("zgrid lab down: %v\n%s", err, out)
		}
		<-up.done
		left, err := lab.Find(dir, st.ID)
		if err != nil {
			b.Fatal(err)
		}
		if !left.Empty() {
			b.Fatalf("left after lab down: %s", left)
		}
		b.ReportMetric(ready.Seconds(), "s-lab-ready")
		b.ReportMetric(allPinged.Seconds(), "s-vms-all-pinged")
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
