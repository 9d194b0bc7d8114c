package e2e

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/lab"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

// TestLab runs `zgrid lab up --nodes 2`: both nodes register on the lab's
// grid, a tenant creates a network over them with zosctl and node 1's
// network resource pings node 2's over the farm LAN (WireGuard); `zgrid
// lab down` stops the lab and leaves no namespace, mount, loop device or
// process behind. (A VM on each node pinging the others is the same path
// with QEMU under tcg on top: too slow for make test.)
func TestLab(t *testing.T) {
	requireNodePrereqs(t)
	testutil.RequireBinary(t, "nft")
	testutil.RequireBinary(t, "busybox")
	testutil.RequireFile(t, "/dev/net/tun")
	bin := buildBinaries(t)
	dir := t.TempDir()
	up := startLab(t, bin, dir, 2)
	down := func() (string, error) {
		out, err := exec.Command(filepath.Join(bin, "zgrid"), "lab", "down", "--dir", dir).CombinedOutput()
		return string(out), err
	}
	st, err := lab.ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(up.output(), "export ZOS_GRID="+st.Grid) {
		t.Errorf("lab up does not say how to use it:\n%s", up.output())
	}

	// lab up is ready once its nodes registered and got a public config
	// on the LAN; they serve their API.
	ids := make([]uint32, len(st.Nodes))
	for i, n := range st.Nodes {
		if ids[i] = n.ID; ids[i] == 0 {
			t.Fatalf("lab ready without node %d's id: %+v", i+1, st.Nodes)
		}
	}
	testutil.Eventually(t, 2*time.Minute, "both lab nodes serving", func() (bool, error) {
		for _, n := range st.Nodes {
			if b, _ := os.ReadFile(n.Log); !strings.Contains(string(b), "msg=serving component=api") {
				return false, nil
			}
		}
		return true, nil
	})

	// A tenant's network over both nodes: node 1's resource pings node
	// 2's gateway across the farm LAN.
	g := &grid{url: st.Grid}
	u := newUser(t, g)
	u.mustRun("network", "create", "--name", "net", "--nodes", strconv.Itoa(int(ids[0]))+","+strconv.Itoa(int(ids[1])), "--ip-range", "10.20.0.0/16")
	netID := gridtypes.NetID(dial(t, u).twin.ID, "net")
	ns1 := network.NamesOf(st.Net.Nodes[0].Prefix, netID).NS
	if !netns.Exists(ns1) {
		t.Fatalf("node 1 has no namespace %s for the network", ns1)
	}
	// Subnets are given in node order from x.x.2.0.
	if ok, out := pingRetry(ns1, netip.MustParseAddr("10.20.3.1")); !ok {
		t.Fatalf("node 1's network resource cannot ping node 2's gateway 10.20.3.1: %s", out)
	}

	// lab down: the up process ends and nothing of the lab is left.
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
