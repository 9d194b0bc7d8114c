package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestVMExample deploys examples/vm.yaml (a VM on a network with a disk
// and a volume) as a user would, with only the flist, the entrypoint and
// the address changed, and without --node: zosctl places it on the
// network's node, the VM boots with its disk at /data and its volume at
// /shared, and canceling removes it.
func TestVMExample(t *testing.T) {
	n, u := vmWorld(t)
	url := busyboxFlist(t, u, "busybox")
	id := strconv.Itoa(int(n.id))
	_, errs, code := u.run("network", "create", "--name", "net1", "--nodes", id, "--ip-range", "10.20.0.0/16")
	if code != 0 {
		t.Fatalf("network create: %s", errs)
	}
	m := regexp.MustCompile(`subnet (10\.20\.\d+)\.0/24`).FindStringSubmatch(errs)
	if m == nil {
		t.Fatalf("network create did not say the node's subnet: %q", errs)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "vm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := string(b)
	for _, r := range [][2]string{
		{"https://hub.grid.tf/tf-official-apps/base:latest.flist", url},
		{"/sbin/zinit init", "/start.sh"},
		{"ip: 10.20.2.2", "ip: " + m[1] + ".2"},
		{"memory: 512M", "memory: 256M"},
	} {
		if !strings.Contains(y, r[0]) {
			t.Fatalf("examples/vm.yaml has no %q any more: update this test", r[0])
		}
		y = strings.ReplaceAll(y, r[0], r[1])
	}
	file := filepath.Join(t.TempDir(), "vm.yaml")
	if err := os.WriteFile(file, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := u.run("deploy", "-f", file)
	if code != 0 || !strings.Contains(errs, "picked node "+id) || !strings.Contains(out, "vm (zmachine): ok") {
		t.Fatalf("deploy -f vm.yaml: exit %d\n%s%s", code, out, errs)
	}
	cm := regexp.MustCompile(`contract (\d+), twin (\d+),`).FindStringSubmatch(out)
	if cm == nil {
		t.Fatalf("deploy -f vm.yaml: no contract in %q", out)
	}
	contract, _ := strconv.ParseUint(cm[1], 10, 64)
	twin, _ := strconv.ParseUint(cm[2], 10, 32)
	log := waitConsole(t, u, contract, "vm", regexp.MustCompile(`zos-vm-up boots=1 ip=`+regexp.QuoteMeta(m[1])+`\.2/`), 90*time.Second)
	if !strings.Contains(log, "hello") {
		t.Errorf("the VM did not list its shared volume:\n%s", log)
	}

	u.mustRun("deployment", "cancel", strconv.FormatUint(contract, 10))
	vmName := primitives.VMName(gridtypes.NewWorkloadID(uint32(twin), contract, "vm"))
	waitFor(t, 60*time.Second, "QEMU to stop", func() bool { return qemuPid(t, vmName) == 0 })
}

// TestZDBExample deploys examples/zdb.yaml unchanged, without --node: the
// namespace answers with the example's password, and not without it.
func TestZDBExample(t *testing.T) {
	requireNodePrereqs(t)
	g := startGrid(t)
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	n := startNode(t, g, farmer.farmToken(farm.ID), "--disk", "hdd:4G")
	n.waitRegistered(farmer)
	u := newUser(t, g)

	var d gridtypes.Deployment
	u.json(&d, "deploy", "-f", filepath.Join("..", "..", "examples", "zdb.yaml"))
	if st := d.Get("db").Result.State; st != gridtypes.StateOk {
		t.Fatalf("examples/zdb.yaml: workload db is %s %q", st, d.Get("db").Result.Error)
	}
	r := zdbResult(t, &d, "db")
	if out := redis(t, n.zdbPort, "SELECT "+r.Namespace+" s3cret\nSET k v\nGET k\n"); !strings.Contains(out, "v") {
		t.Fatalf("the example's namespace with its password: %q", out)
	}
	if out := redis(t, n.zdbPort, "SELECT "+r.Namespace+" wrong\nGET k\n"); strings.Contains(out, "\nv") {
		t.Fatalf("the example's namespace answered a wrong password: %q", out)
	}
}
