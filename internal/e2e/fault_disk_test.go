package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// diskRig is a node on three loop disks (ssd:8G, hdd:3G, hdd:3G) checking
// its pools every second, with a tenant holding two 2 GiB namespaces (one
// per HDD: neither device holds both) with acknowledged keys and a volume.
type diskRig struct {
	g        *grid
	n        *node
	farmer   *user
	u        *user
	twin     uint32 // the node's twin
	a, b     gridtypes.Deployment
	vol      gridtypes.Deployment
	poolA    string // the pool holding namespace a
	fileA    string // its disk file
	keys     int
	nsA, nsB string
}

func newDiskRig(t *testing.T) *diskRig {
	requireNodePrereqs(t)
	testutil.RequireBinary(t, "redis-cli")
	r := &diskRig{g: startGrid(t), keys: 200}
	r.farmer = newUser(t, r.g)
	var farm registry.Farm
	r.farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	r.n = startNode(t, r.g, r.farmer.farmToken(farm.ID), "--disk", "hdd:3G", "--disk-check-every", "1s")
	r.n.waitRegistered(r.farmer)
	r.twin = r.nodeTwin(t)
	r.u = newUser(t, r.g)
	node := strconv.Itoa(int(r.n.id))
	r.u.json(&r.a, "deploy", "zdb", "--node", node, "--size", "2G", "--password", "pw", "--name", "a")
	r.u.json(&r.b, "deploy", "zdb", "--node", node, "--size", "2G", "--password", "pw", "--name", "b")
	r.u.json(&r.vol, "deploy", "volume", "--node", node, "--size", "1G", "--name", "vol")
	for _, d := range []*gridtypes.Deployment{&r.a, &r.b, &r.vol} {
		for _, wl := range d.Workloads {
			if wl.Result.State != gridtypes.StateOk {
				t.Fatalf("deploying %s: %s %q", wl.Name, wl.Result.State, wl.Result.Error)
			}
		}
	}
	r.nsA, r.nsB = zdbResult(t, &r.a, "a").Namespace, zdbResult(t, &r.b, "b").Namespace
	for _, ns := range []string{r.nsA, r.nsB} {
		var cmds strings.Builder
		fmt.Fprintf(&cmds, "SELECT %s pw\n", ns)
		for i := range r.keys {
			fmt.Fprintf(&cmds, "SET k%d v%d\n", i, i)
		}
		if out := redis(t, r.n.zdbPort, cmds.String()); strings.Count(out, "k") != r.keys {
			t.Fatalf("writing %d keys to %s: %q", r.keys, ns, out)
		}
	}
	r.poolA = r.poolOf(t, r.nsA)
	if b := r.poolOf(t, r.nsB); b == r.poolA {
		t.Fatalf("both namespaces on pool %s, want one per HDD", b)
	}
	r.fileA = r.diskFile(t, r.poolA)
	return r
}

// poolOf is the pool whose zdb device holds namespace ns.
func (r *diskRig) poolOf(t *testing.T, ns string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(r.n.data, "mnt", "*", "zdb", "data", ns))
	if len(m) != 1 {
		t.Fatalf("namespace %s found in %v, want one zdb device", ns, m)
	}
	return filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(m[0]))))
}

// diskFile is the hosted disk file of a pool, from the node's record.
func (r *diskRig) diskFile(t *testing.T, pool string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.n.data, "disks", "disks.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Disks []struct{ File, Label string }
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	for _, d := range s.Disks {
		if d.Label == pool {
			return filepath.Join(r.n.data, "disks", d.File)
		}
	}
	t.Fatalf("no disk file recorded for pool %s in %s", pool, b)
	return ""
}

func (r *diskRig) nodeTwin(t *testing.T) uint32 {
	t.Helper()
	var v registry.Node
	r.farmer.json(&v, "node", "show", strconv.Itoa(int(r.n.id)))
	return v.TwinID
}

// pools is what `zosctl node pools` shows.
func (r *diskRig) pools(t *testing.T) []nodeapi.Pool {
	t.Helper()
	var p []nodeapi.Pool
	r.u.json(&p, "node", "pools", strconv.Itoa(int(r.n.id)))
	return p
}

// waitPoolFailed waits until `zosctl node pools` shows pool failed with a
// reason containing want.
func (r *diskRig) waitPoolFailed(t *testing.T, pool, want string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, "pool "+pool+" shown failed", func() (bool, error) {
		out, errs, code := r.u.run("node", "pools", strconv.Itoa(int(r.n.id)), "--json")
		if code != 0 {
			return false, fmt.Errorf("node pools: %s", errs)
		}
		var ps []nodeapi.Pool
		if err := json.Unmarshal([]byte(out), &ps); err != nil {
			return false, err
		}
		for _, p := range ps {
			if p.Name == pool && strings.Contains(p.Broken, want) {
				return true, nil
			}
		}
		return false, fmt.Errorf("pools: %s", out)
	})
}

// state is a workload's state and error as `zosctl deployment get` shows.
func (r *diskRig) state(t *testing.T, d gridtypes.Deployment, name string) (gridtypes.ResultState, string) {
	t.Helper()
	out, errs, code := r.u.run("deployment", "get", strconv.FormatUint(d.ContractID, 10), "--json")
	if code != 0 {
		return "", "deployment get: " + errs
	}
	var got gridtypes.Deployment
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Get(name) == nil {
		return "", fmt.Sprintf("deployment get: %v %q", err, out)
	}
	res := got.Get(name).Result
	return res.State, res.Error
}

// waitState waits until workload name of d is in state with an error
// containing want.
func (r *diskRig) waitState(t *testing.T, d gridtypes.Deployment, name string, state gridtypes.ResultState, want string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, "workload "+name+" "+string(state), func() (bool, error) {
		st, msg := r.state(t, d, name)
		return st == state && strings.Contains(msg, want), fmt.Errorf("workload %s: %s %q", name, st, msg)
	})
}

// checkKeys fails unless every acknowledged key of namespace ns reads back.
func (r *diskRig) checkKeys(t *testing.T, ns string) {
	t.Helper()
	var cmds strings.Builder
	fmt.Fprintf(&cmds, "SELECT %s pw\n", ns)
	for i := range r.keys {
		fmt.Fprintf(&cmds, "GET k%d\n", i)
	}
	out := redis(t, r.n.zdbPort, cmds.String())
	for i := range r.keys {
		if !strings.Contains(out, fmt.Sprintf("v%d\n", i)) {
			t.Fatalf("key k%d of %s lost: %.300q", i, ns, out)
		}
	}
}

// restart stops the node, runs between, starts it again with extra flags
// and checks it came back as the same node and twin, and that the grid
// knows no other node.
func (r *diskRig) restart(t *testing.T, between func(), extra ...string) {
	t.Helper()
	id := r.n.id
	r.n.stop()
	if between != nil {
		between()
	}
	base := r.n.args
	r.n.args = append(append([]string(nil), base...), extra...)
	r.n.start()
	r.n.args = base
	if got := r.n.waitRegistered(r.farmer); got != id {
		t.Fatalf("node came back as node %d, want %d (its identity)", got, id)
	}
	if tw := r.nodeTwin(t); tw != r.twin {
		t.Fatalf("node came back with twin %d, want %d", tw, r.twin)
	}
	var list []registry.Node
	r.farmer.json(&list, "node", "list")
	if len(list) != 1 {
		t.Fatalf("the grid lists %d nodes after the restart, want 1: %v", len(list), list)
	}
}

// A disk dies under running workloads: its file is truncated to 0, or
// removed (the loop device keeps the deleted file). The pool and the
// namespace on it are shown failed with the reason (zosctl node pools,
// zosctl deployment get, the node's log); the other namespace and the
// volume stay ok with every acknowledged key; the failed namespace answers
// writes with an error instead of acknowledging them; a new namespace does not go
// on the failed pool. After a restart the node is the same node and twin,
// the disk file is neither grown back nor made again, the failed namespace
// stays failed and the other keeps its keys.
func TestFaultDiskLost(t *testing.T) {
	faults := []struct {
		name    string
		do      func(file string) error
		running string // reason while running
		after   string // reason after the restart
	}{
		{"truncated", func(f string) error { return os.Truncate(f, 0) }, "shrank from", "not grown again"},
		{"removed", os.Remove, "is gone", "is missing; not made again"},
	}
	for round := range faultRounds(t) {
		for _, fault := range faults {
			t.Run(fmt.Sprintf("%s/round%d", fault.name, round), func(t *testing.T) {
				r := newDiskRig(t)
				t0 := time.Now()
				if err := fault.do(r.fileA); err != nil {
					t.Fatal(err)
				}
				r.waitPoolFailed(t, r.poolA, fault.running)
				r.waitState(t, r.a, "a", gridtypes.StateError, "pool "+r.poolA+" failed: disk file")
				t.Logf("disk %s: pool and workload shown failed %v after the fault (checks every 1s)", fault.name, time.Since(t0).Round(10*time.Millisecond))
				if !r.n.proc.logged("pool_failed pool=" + r.poolA) {
					t.Errorf("node log lacks pool_failed pool=%s", r.poolA)
				}
				// The dying disk's namespace no longer acknowledges writes.
				if out := redis(t, r.n.zdbPort, fmt.Sprintf("SELECT %s pw\nSET late v\n", r.nsA)); strings.Contains(out, "OK") {
					t.Errorf("writing to the namespace on the failed pool: %q, want an error", out)
				}
				for _, c := range []struct {
					d    gridtypes.Deployment
					name string
				}{{r.b, "b"}, {r.vol, "vol"}} {
					if st, msg := r.state(t, c.d, c.name); st != gridtypes.StateOk {
						t.Errorf("workload %s on a healthy pool: %s %q, want ok", c.name, st, msg)
					}
				}
				r.checkKeys(t, r.nsB)

				var c gridtypes.Deployment
				out, errs, code := r.u.run("deploy", "zdb", "--node", strconv.Itoa(int(r.n.id)), "--size", "500M", "--password", "pw", "--name", "c", "--json")
				if code == 0 {
					if err := json.Unmarshal([]byte(out), &c); err != nil {
						t.Fatal(err)
					}
					if p := r.poolOf(t, zdbResult(t, &c, "c").Namespace); p == r.poolA {
						t.Errorf("a new namespace went on the failed pool %s", p)
					}
				} else if !strings.Contains(out+errs, "pool "+r.poolA+" failed") {
					t.Errorf("a new namespace refused without naming the failed pool: %s%s", out, errs)
				}

				r.restart(t, nil)
				r.waitPoolFailed(t, r.poolA, fault.after)
				if st, err := os.Stat(r.fileA); err == nil && st.Size() >= 3<<30 {
					t.Errorf("disk file after the restart: %d bytes, want it not grown back", st.Size())
				}
				r.waitState(t, r.a, "a", gridtypes.StateError, r.poolA)
				r.waitState(t, r.b, "b", gridtypes.StateOk, "")
				r.checkKeys(t, r.nsB)
				r.n.stop()
				checkClean(t, r.n.data)
			})
		}
	}
}

// The node restarts with one of its disks missing. An HDD first: its pool
// is shown failed ("missing; not made again"), the namespace on it fails
// naming it, the other keeps every key, the node is the same node and
// twin. Then also the SSD that held the cache (the deployments and the
// node's key): the node refuses to start, naming the pool and the flag.
// With --recreate-missing-disks the farmer gets new empty pools, the key
// comes back from the surviving HDD pool so the node is the same node and
// twin, the other namespace keeps its keys and the failed one is not
// silently revived.
func TestFaultDiskMissingAtRestart(t *testing.T) {
	for round := range faultRounds(t) {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			r := newDiskRig(t)
			r.restart(t, func() {
				if err := os.Remove(r.fileA); err != nil {
					t.Fatal(err)
				}
			})
			r.waitPoolFailed(t, r.poolA, "is missing; not made again")
			if _, err := os.Stat(r.fileA); !os.IsNotExist(err) {
				t.Errorf("missing disk file after the restart: %v, want still missing", err)
			}
			r.waitState(t, r.a, "a", gridtypes.StateError, "pool "+r.poolA+" failed")
			r.waitState(t, r.b, "b", gridtypes.StateOk, "")
			r.checkKeys(t, r.nsB)

			ssd := ""
			for _, p := range r.pools(t) {
				if p.Type == "ssd" {
					ssd = p.Name
				}
			}
			ssdFile := r.diskFile(t, ssd)
			// The SSD held the cache (the deployments and the key): the node
			// refuses to start over with an empty cache by itself.
			r.n.stop()
			if err := os.Remove(ssdFile); err != nil {
				t.Fatal(err)
			}
			r.n.start()
			select {
			case <-r.n.proc.done:
			case <-time.After(60 * time.Second):
				t.Fatalf("node started without the disk of its cache:\n%s", r.n.proc.output())
			}
			if out := r.n.proc.output(); !strings.Contains(out, "cache lost") || !strings.Contains(out, ssd) || !strings.Contains(out, "--recreate-missing-disks") {
				t.Errorf("node output without the cache's disk: %s\nwant it to name the lost cache pool and the flag", out)
			}
			if _, err := os.Stat(ssdFile); !os.IsNotExist(err) {
				t.Errorf("the cache's disk file after the refused start: %v, want still missing", err)
			}
			checkClean(t, r.n.data)

			// The farmer starts over: new empty disks, the key comes back
			// from the surviving HDD pool, the node is the same node.
			r.restart(t, nil, "--recreate-missing-disks")
			if !r.n.proc.logged("identity_restored") {
				t.Errorf("node log lacks identity_restored after the cache's disk was made again")
			}
			testutil.Eventually(t, 60*time.Second, "every pool healthy", func() (bool, error) {
				for _, p := range r.pools(t) {
					if p.Broken != "" {
						return false, fmt.Errorf("pool %s: %s", p.Name, p.Broken)
					}
				}
				return true, nil
			})
			if out := redis(t, r.n.zdbPort, fmt.Sprintf("SELECT %s pw\nGET k1\n", r.nsA)); strings.Contains(out, "v1") {
				t.Errorf("namespace a answers after its disk was recreated empty: %q", out)
			}
			r.checkKeys(t, r.nsB)
			r.n.stop()
			checkClean(t, r.n.data)
		})
	}
}
