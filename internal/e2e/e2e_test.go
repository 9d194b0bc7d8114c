// Package e2e holds the end-to-end tests of the spine: a real zgrid, real
// hosted nodes on loop disks, and zosctl as a library. They need root.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// setup starts a grid, a farm and one node, and returns a user.
func setup(t testing.TB) (*grid, *node, *user) {
	requireNodePrereqs(t)
	g := startGrid(t)
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	n := startNode(t, g, farmer.farmToken(farm.ID))
	n.waitRegistered(farmer)
	return g, n, newUser(t, g)
}

func zdbResult(t testing.TB, d *gridtypes.Deployment, name string) gridtypes.ZDBResult {
	t.Helper()
	wl := d.Get(name)
	if wl == nil {
		t.Fatalf("no workload %s", name)
	}
	var r gridtypes.ZDBResult
	if err := wl.Result.Unmarshal(&r); err != nil {
		t.Fatalf("zdb result of %s: %v (%+v)", name, err, wl.Result)
	}
	return r
}

func writeJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "d.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDeployLifecycle(t *testing.T) {
	_, n, u := setup(t)
	node := strconv.Itoa(int(n.id))

	var d gridtypes.Deployment
	u.json(&d, "deploy", "zdb", "--node", node, "--size", "1G", "--password", "pw1", "--name", "db")
	r := zdbResult(t, &d, "db")
	if r.Port != uint(n.zdbPort) || len(r.IPs) == 0 || r.Namespace != fmt.Sprintf("%d-%d-db", d.TwinID, d.ContractID) {
		t.Fatalf("zdb result %+v", r)
	}
	out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw1\nSET k hello\nGET k\n", r.Namespace))
	if !strings.Contains(out, "OK") || !strings.Contains(out, "hello") {
		t.Fatalf("redis-cli: %q", out)
	}
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s wrong\nGET k\n", r.Namespace)); strings.Contains(out, "hello") {
		t.Fatalf("a wrong password read the namespace: %q", out)
	}

	// get and changes.
	var got gridtypes.Deployment
	u.json(&got, "deployment", "get", strconv.FormatUint(d.ContractID, 10))
	if got.Get("db").Result.State != gridtypes.StateOk {
		t.Fatalf("get: %+v", got.Get("db").Result)
	}
	var ch []gridtypes.Workload
	u.json(&ch, "deployment", "changes", strconv.FormatUint(d.ContractID, 10))
	if len(ch) != 2 || ch[0].Result.State != gridtypes.StateInit || ch[1].Result.State != gridtypes.StateOk {
		t.Fatalf("changes: %+v", ch)
	}

	// Update: change the password and add a volume.
	want := got
	want.Workloads = append([]gridtypes.Workload(nil), got.Workloads...)
	var z gridtypes.ZDB
	if err := json.Unmarshal(want.Workloads[0].Data, &z); err != nil {
		t.Fatal(err)
	}
	z.Password = "pw2"
	want.Workloads[0].SetData(&z)
	vol := gridtypes.Workload{Name: "vol", Type: gridtypes.VolumeType}
	vol.SetData(&gridtypes.Volume{Size: 512 * gridtypes.Megabyte})
	want.Workloads = append(want.Workloads, vol)
	var upd gridtypes.Deployment
	u.json(&upd, "deployment", "update", "-f", writeJSON(t, want), strconv.FormatUint(d.ContractID, 10))
	if upd.Version != 1 || upd.Get("vol").Result.State != gridtypes.StateOk || upd.Get("db").Result.State != gridtypes.StateOk {
		t.Fatalf("after update: %+v", upd)
	}
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw2\nGET k\n", r.Namespace)); !strings.Contains(out, "hello") {
		t.Fatalf("new password: %q", out)
	}
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw1\nGET k\n", r.Namespace)); strings.Contains(out, "hello") {
		t.Fatalf("old password still works: %q", out)
	}

	// Grow the volume.
	want2 := upd
	want2.Workloads = append([]gridtypes.Workload(nil), upd.Workloads...)
	for i := range want2.Workloads {
		if want2.Workloads[i].Name == "vol" {
			want2.Workloads[i].SetData(&gridtypes.Volume{Size: gridtypes.Gigabyte})
		}
	}
	var upd2 gridtypes.Deployment
	u.json(&upd2, "deployment", "update", "-f", writeJSON(t, want2), strconv.FormatUint(d.ContractID, 10))
	if upd2.Version != 2 || upd2.Get("vol").Version != 2 || upd2.Get("db").Version != 1 {
		t.Fatalf("versions after grow: %+v", upd2)
	}

	// Cancel: everything removed, namespace gone, space freed.
	var before, after nodeapi.Statistics
	u.json(&before, "node", "stats", node)
	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	u.json(&after, "node", "stats", node)
	if freed := before.Used.HRU - after.Used.HRU; freed != gridtypes.Gigabyte {
		t.Fatalf("cancel freed %d bytes of HDD, want %d (the zdb)", freed, gridtypes.Gigabyte)
	}
	if freed := before.Used.SRU - after.Used.SRU; freed != gridtypes.Gigabyte {
		t.Fatalf("cancel freed %d bytes of SSD, want %d (the volume)", freed, gridtypes.Gigabyte)
	}
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s pw2\n", r.Namespace)); !strings.Contains(strings.ToLower(out), "not found") {
		t.Fatalf("namespace still there after cancel: %q", out)
	}
	u.json(&got, "deployment", "get", strconv.FormatUint(d.ContractID, 10))
	for _, wl := range got.Workloads {
		if wl.Result.State != gridtypes.StateDeleted {
			t.Fatalf("%s: %s after cancel", wl.Name, wl.Result.State)
		}
	}

	// A deployment that does not fit fails clearly, others unaffected.
	var d2 gridtypes.Deployment
	u.json(&d2, "deploy", "zdb", "--node", node, "--size", "1G", "--name", "ok")
	out, errs, code := u.run("deploy", "zdb", "--node", node, "--size", "100G", "--name", "huge")
	if code == 0 || !strings.Contains(errs+out, "not enough capacity: HDD needs") {
		t.Fatalf("oversized deployment: exit %d\n%s%s", code, out, errs)
	}
	u.json(&got, "deployment", "get", strconv.FormatUint(d2.ContractID, 10))
	if got.Get("ok").Result.State != gridtypes.StateOk {
		t.Fatal("the other deployment was affected")
	}

	n.stop()
	checkClean(t, n.data)
}

// direct is a user's raw access to the grid, to send what zosctl never would.
type direct struct {
	reg  *registry.Client
	rmb  *rmb.Client
	key  identity.Key
	twin registry.Twin
}

func dial(t testing.TB, u *user) *direct {
	t.Helper()
	key, err := identity.Load(filepath.Join(u.home, "key.json"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := rmb.Connect(u.grid.url, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reg := registry.NewClient(nc, key)
	twin, err := reg.TwinByKey(context.Background(), key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &direct{reg: reg, rmb: rmb.NewClient(nc, twin.ID, key, reg), key: key, twin: twin}
}

func (c *direct) deployment(name string, size uint64) *gridtypes.Deployment {
	d := &gridtypes.Deployment{TwinID: c.twin.ID, SignatureRequirement: gridtypes.SignatureRequirement{
		Requests: []gridtypes.SignatureRequest{{TwinID: c.twin.ID, Weight: 1}}, WeightRequired: 1}}
	wl := gridtypes.Workload{Name: name, Type: gridtypes.ZDBType}
	wl.SetData(&gridtypes.ZDB{Size: size, Mode: "user"})
	d.Workloads = []gridtypes.Workload{wl}
	return d
}

// contract signs d and creates its contract on node.
func (c *direct) contract(t testing.TB, d *gridtypes.Deployment, node uint32) {
	t.Helper()
	if err := d.Sign(c.twin.ID, c.key); err != nil {
		t.Fatal(err)
	}
	h, err := d.Hash()
	if err != nil {
		t.Fatal(err)
	}
	ct, err := c.reg.CreateNodeContract(context.Background(), node, h, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	d.ContractID = ct.ID
}

func (c *direct) send(n *node, nodeTwin uint32, cmd string, d any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.rmb.Call(ctx, nodeTwin, cmd, d, nil)
}

func TestTampering(t *testing.T) {
	g, n, u := setup(t)
	c := dial(t, u)
	ctx := context.Background()
	nodeRec, err := c.reg.Node(ctx, n.id)
	if err != nil {
		t.Fatal(err)
	}
	// A second node record (no zos behind it) for the "other node" case,
	// in a farm of its twin.
	other := newUser(t, g)
	oc := dial(t, other)
	var otherFarm registry.Farm
	other.json(&otherFarm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	otherNode, err := oc.reg.RegisterNode(ctx, registry.NodeRegistration{FarmID: otherFarm.ID, FarmToken: other.farmToken(otherFarm.ID),
		Total: registry.Resources{CRU: 1, MRU: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	mallory := dial(t, newUser(t, g))

	for _, tt := range []struct {
		name    string
		make    func(t *testing.T) (cmd string, d *gridtypes.Deployment)
		wantErr string
	}{
		{"changed after signing", func(t *testing.T) (string, *gridtypes.Deployment) {
			d := c.deployment("a", gridtypes.Gigabyte)
			c.contract(t, d, n.id)
			d.Workloads[0].SetData(&gridtypes.ZDB{Size: 2 * gridtypes.Gigabyte, Mode: "user"})
			return "zos.deployment.deploy", d
		}, "does not match"},
		{"contract of another deployment", func(t *testing.T) (string, *gridtypes.Deployment) {
			d1 := c.deployment("a", gridtypes.Gigabyte)
			c.contract(t, d1, n.id)
			d2 := c.deployment("b", gridtypes.Gigabyte)
			d2.Sign(c.twin.ID, c.key)
			d2.ContractID = d1.ContractID
			return "zos.deployment.deploy", d2
		}, "holds hash"},
		{"contract on another node", func(t *testing.T) (string, *gridtypes.Deployment) {
			d := c.deployment("a", gridtypes.Gigabyte)
			c.contract(t, d, otherNode.ID)
			return "zos.deployment.deploy", d
		}, fmt.Sprintf("is for node %d", otherNode.ID)},
		{"another twin's deployment", func(t *testing.T) (string, *gridtypes.Deployment) {
			d := c.deployment("a", gridtypes.Gigabyte)
			c.contract(t, d, n.id)
			return "mallory", d
		}, "sent it"},
		{"update that skips a version", func(t *testing.T) (string, *gridtypes.Deployment) {
			d := c.deployment("a", gridtypes.Gigabyte)
			c.contract(t, d, n.id)
			if err := c.send(n, nodeRec.TwinID, "zos.deployment.deploy", d); err != nil {
				t.Fatal(err)
			}
			d2 := d.Clone()
			d2.Version = 2
			d2.Workloads[0].Version = 2
			d2.Workloads[0].Result = gridtypes.Result{}
			d2.SignatureRequirement.Signatures = nil
			d2.Sign(c.twin.ID, c.key)
			h, _ := d2.Hash()
			if _, err := c.reg.UpdateNodeContract(ctx, d.ContractID, h, ""); err != nil {
				t.Fatal(err)
			}
			return "zos.deployment.update", d2
		}, "version must be 1"},
		{"oversized deployment", func(t *testing.T) (string, *gridtypes.Deployment) {
			d := c.deployment("a", gridtypes.Gigabyte)
			for i := 0; i < gridtypes.MaxWorkloads; i++ {
				wl := d.Workloads[0]
				wl.Name = fmt.Sprintf("w%d", i)
				d.Workloads = append(d.Workloads, wl)
			}
			return "zos.deployment.deploy", d
		}, "limit of 1000"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd, d := tt.make(t)
			sender := c
			if cmd == "mallory" {
				sender, cmd = mallory, "zos.deployment.deploy"
			}
			err := sender.send(n, nodeRec.TwinID, cmd, d)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
			}
			var got gridtypes.Deployment
			err = sender.rmb.Call(ctx, nodeRec.TwinID, "zos.deployment.get", map[string]uint64{"contract_id": d.ContractID}, &got)
			if cmd == "zos.deployment.update" {
				if err != nil || got.Version != 0 {
					t.Fatalf("the rejected update changed the stored deployment: version %d, %v", got.Version, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("a rejected deployment was stored: %+v", got)
			}
		})
	}
	// delete over the API is refused, as the original.
	err = c.rmb.Call(ctx, nodeRec.TwinID, "zos.deployment.delete", map[string]uint64{"contract_id": 1}, nil)
	if err == nil || !strings.Contains(err.Error(), "cancel your contract") {
		t.Fatalf("delete: %v", err)
	}
}

// TestCrashAndReboot kills the node while 20 deployments are being
// provisioned, restarts it, and checks that all reach ok exactly once; then
// stops it cleanly (pools unmounted, disks detached) and starts it again:
// same node id, workloads and data back.
func TestCrashAndReboot(t *testing.T) {
	_, n, u := setup(t)
	c := dial(t, u)
	ctx := context.Background()
	nodeRec, err := c.reg.Node(ctx, n.id)
	if err != nil {
		t.Fatal(err)
	}
	var ds []*gridtypes.Deployment
	for i := 0; i < 20; i++ {
		d := c.deployment("db", 64*gridtypes.Megabyte)
		c.contract(t, d, n.id)
		ds = append(ds, d)
	}
	// Send all 20 at once and kill the node as soon as 8 were accepted:
	// the rest are in flight, queued or half provisioned.
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	var failed []*gridtypes.Deployment
	crashed := make(chan struct{})
	for _, d := range ds {
		wg.Add(1)
		go func(d *gridtypes.Deployment) {
			defer wg.Done()
			err := c.send(n, nodeRec.TwinID, "zos.deployment.deploy", d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, d)
				return
			}
			accepted++
			if accepted == 8 {
				n.crash()
				close(crashed)
			}
		}(d)
	}
	wg.Wait()
	select {
	case <-crashed:
	default:
		n.crash()
	}
	t.Logf("%d deployments accepted before the crash, %d to resend", accepted, len(failed))
	n.start()
	if id := n.waitRegistered(u); id != nodeRec.ID {
		t.Fatalf("node id changed from %d to %d", nodeRec.ID, id)
	}
	// A client resends what got no answer; one the node stored before it
	// died is refused as existing.
	for _, d := range failed {
		if err := c.send(n, nodeRec.TwinID, "zos.deployment.deploy", d); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("resending %d: %v", d.ContractID, err)
		}
	}
	waitAllOk := func() {
		t.Helper()
		okd := 0 // deployments seen ok, in order
		testutil.Eventually(t, 2*time.Minute, "every deployment ok", func() (bool, error) {
			for ; okd < len(ds); okd++ {
				d := ds[okd]
				var got gridtypes.Deployment
				err := c.rmb.Call(ctx, nodeRec.TwinID, "zos.deployment.get", map[string]uint64{"contract_id": d.ContractID}, &got)
				if err == nil && got.Get("db").Result.State == gridtypes.StateError {
					t.Fatalf("contract %d: %s", d.ContractID, got.Get("db").Result.Error)
				}
				if err != nil || got.Get("db").Result.State != gridtypes.StateOk {
					return false, fmt.Errorf("contract %d not ok: %v %+v", d.ContractID, err, got)
				}
			}
			return true, nil
		})
	}
	waitAllOk()
	for _, d := range ds {
		var ch []gridtypes.Workload
		if err := c.rmb.Call(ctx, nodeRec.TwinID, "zos.deployment.changes", map[string]uint64{"contract_id": d.ContractID}, &ch); err != nil {
			t.Fatal(err)
		}
		oks := 0
		for _, wl := range ch {
			if wl.Result.State == gridtypes.StateOk {
				oks++
			}
		}
		if oks != 1 {
			t.Fatalf("contract %d: %d ok records, want 1: %+v", d.ContractID, oks, ch)
		}
	}

	// Write data, stop cleanly, start again: the same id, the data back.
	ns := fmt.Sprintf("%d-%d-db", c.twin.ID, ds[0].ContractID)
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s\nSET survive yes\n", ns)); !strings.Contains(out, "OK") {
		t.Fatalf("redis: %q", out)
	}
	n.stop()
	checkClean(t, n.data)
	n.start()
	if id := n.waitRegistered(u); id != nodeRec.ID {
		t.Fatalf("node id changed from %d to %d after reboot", nodeRec.ID, id)
	}
	waitAllOk()
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s\nGET survive\n", ns)); !strings.Contains(out, "yes") {
		t.Fatalf("data lost across reboot: %q", out)
	}
}

// TestCancelWhileDown cancels a contract while its node is stopped: when
// the node comes back it catches up (event stream from its last sequence,
// or the resync) and removes the deployment.
func TestCancelWhileDown(t *testing.T) {
	_, n, u := setup(t)
	var d gridtypes.Deployment
	u.json(&d, "deploy", "zdb", "--node", strconv.Itoa(int(n.id)), "--size", "64M", "--name", "db")
	n.stop()
	c := dial(t, u)
	ctx := context.Background()
	if err := c.reg.CancelContract(ctx, d.ContractID); err != nil {
		t.Fatal(err)
	}
	n.start()
	n.waitRegistered(u)
	nodeRec, err := c.reg.Node(ctx, n.id)
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "the deployment removed after the node came back", func() (bool, error) {
		var got gridtypes.Deployment
		err := c.rmb.Call(ctx, nodeRec.TwinID, "zos.deployment.get", map[string]uint64{"contract_id": d.ContractID}, &got)
		if err != nil || got.Get("db").Result.State != gridtypes.StateDeleted {
			return false, fmt.Errorf("%v %+v", err, got)
		}
		return true, nil
	})
	ns := fmt.Sprintf("%d-%d-db", d.TwinID, d.ContractID)
	if out := redis(t, n.zdbPort, fmt.Sprintf("SELECT %s\n", ns)); !strings.Contains(strings.ToLower(out), "not found") {
		t.Fatalf("namespace still served: %q", out)
	}
}
