package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
	"github.com/zos-go/zos/internal/zdbclient"
)

// QSFSScript is the entrypoint of the VM of TestQSFSVMAcrossNodes: it
// writes files into the qsfs mounted at /qs (one larger than the qsfs's
// cache), prints their checksums ("sum1 NAME SHA256") and "qsfs-phase 1";
// then, each time the test drops /ctl/goN on its control volume, it reads
// every file again and prints "sumN ..." and "qsfs-phase N". One boot
// serves every check (QEMU runs under tcg here: a boot costs tens of
// seconds).
const QSFSScript = `#!/bin/sh
sums() {
	for f in small.txt dir/big.bin more.bin; do
		s=$(sha256sum "/qs/$f" | cut -d' ' -f1)
		echo "sum$1 $f ${s:-unreadable}"
	done
}
mkdir -p /qs/dir || echo "qsfs-error mkdir"
echo "unbreakable, written by the vm" > /qs/small.txt || echo "qsfs-error small"
dd if=/dev/urandom of=/qs/dir/big.bin bs=1M count=12 2>/dev/null || echo "qsfs-error big"
dd if=/dev/urandom of=/qs/more.bin bs=1M count=6 2>/dev/null || echo "qsfs-error more"
sync
sums 1
echo "qsfs-phase 1"
n=2
while true; do
	if [ -f /ctl/go$n ]; then
		sums $n
		echo "qsfs-phase $n"
		n=$((n+1))
	fi
	sleep 1
done
`

// qsfsFiles are the files QSFSScript writes, relative to the mount.
var qsfsFiles = []string{"small.txt", "dir/big.bin", "more.bin"}

// qsfsWorld is the grid of TestQSFSVMAcrossNodes: node a runs VMs and the
// qsfs, node b only holds backends; both hold zdbs of the user.
type qsfsWorld struct {
	t    *testing.T
	a, b *node
	u    *user
	// zdbs by workload name (d1, d2, meta1, meta2 on a; d3, d4, meta3,
	// later d5 on b): the backend and the contract holding it.
	zdbs map[string]qsfsZDB
}

type qsfsZDB struct {
	node     *node
	contract uint64
	backend  gridtypes.ZdbBackend
}

// deployZDBs deploys one zdb per name on n, each in a contract of its own
// (so that one can be deleted alone).
func (w *qsfsWorld) deployZDBs(n *node, names ...string) {
	w.t.Helper()
	for _, name := range names {
		var d gridtypes.Deployment
		w.u.json(&d, "deploy", "zdb", "--node", strconv.Itoa(int(n.id)), "--size", "128M", "--password", "pw-"+name, "--name", name)
		r := zdbResult(w.t, &d, name)
		if len(r.IPs) == 0 {
			w.t.Fatalf("zdb %s has no address: %+v", name, r)
		}
		w.zdbs[name] = qsfsZDB{node: n, contract: d.ContractID, backend: gridtypes.ZdbBackend{
			Address: net.JoinHostPort(r.IPs[0], strconv.Itoa(int(r.Port))), Namespace: r.Namespace, Password: "pw-" + name}}
	}
}

// config is a qsfs config over the zdbs: a group per node (g1 on a, g2
// on b), 2 of 4 shards, surviving the loss of a group (a node) or of a
// backend; meta1..3 hold the metadata.
func (w *qsfsWorld) config(g1, g2 []string, key, metaKey []byte) gridtypes.QuantumSafeConfig {
	c := gridtypes.QuantumSafeConfig{MinimalShards: 2, ExpectedShards: 4, RedundantGroups: 1, RedundantNodes: 1}
	for _, g := range [][]string{g1, g2} {
		var grp gridtypes.ZdbGroup
		for _, name := range g {
			grp.Backends = append(grp.Backends, w.zdbs[name].backend)
		}
		c.Groups = append(c.Groups, grp)
	}
	for _, name := range []string{"meta1", "meta2", "meta3"} {
		c.Meta.Config.Backends = append(c.Meta.Config.Backends, w.zdbs[name].backend)
	}
	c.Meta.Type, c.Meta.Config.Prefix = "zdb", "qsfs"
	c.Compression.Algorithm = "snappy"
	c.Encryption = gridtypes.Encryption{Algorithm: "AES", Key: key}
	c.Meta.Config.Encryption = gridtypes.Encryption{Algorithm: "AES", Key: metaKey}
	return c
}

func qsfsWorkload(t testing.TB, name string, cache gridtypes.Unit, c gridtypes.QuantumSafeConfig) gridtypes.Workload {
	t.Helper()
	wl := gridtypes.Workload{Name: name, Type: gridtypes.QuantumSafeFSType}
	if err := wl.SetData(&gridtypes.QuantumSafeFS{Cache: cache, Config: c}); err != nil {
		t.Fatal(err)
	}
	return wl
}

func randomKey(t testing.TB) []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// scrape reads the qsfs's metrics page into sample -> value.
func scrape(t testing.TB, endpoint string) map[string]string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(endpoint)
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: got %s, want 200", resp.Status)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		l := sc.Text()
		if i := strings.LastIndexByte(l, ' '); i > 0 && !strings.HasPrefix(l, "#") {
			out[l[:i]] = l[i+1:]
		}
	}
	return out
}

func metricInt(m map[string]string, name string) int {
	v, _ := strconv.Atoi(m[name])
	return v
}

// backendsUp counts the backends the metrics show up, and all of them.
func backendsUp(m map[string]string) (up, total int) {
	for k, v := range m {
		if strings.HasPrefix(k, "qsfs_backend_up{") {
			total++
			if v == "1" {
				up++
			}
		}
	}
	return up, total
}

// hostSums reads every file through the qsfs mount at dir and returns
// name -> SHA-256 (hex).
func hostSums(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range qsfsFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("reading %s through %s: %v", f, dir, err)
			continue
		}
		s := sha256.Sum256(b)
		out[f] = hex.EncodeToString(s[:])
	}
	return out
}

var sumLine = regexp.MustCompile(`(?m)^sum(\d+) (\S+) (\S+)\s*$`)

// vmSums parses the "sumN NAME SHA" lines of phase N from a console log.
func vmSums(log string, phase int) map[string]string {
	out := map[string]string{}
	for _, m := range sumLine.FindAllStringSubmatch(log, -1) {
		if m[1] == strconv.Itoa(phase) {
			out[m[2]] = m[3]
		}
	}
	return out
}

// sameSums checks that got holds every file with the checksum in want.
func sameSums(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	for _, f := range qsfsFiles {
		if want[f] == "" || got[f] != want[f] {
			t.Errorf("%s: %s has sha256 %q, want %q", what, f, got[f], want[f])
		}
	}
}

// shardKeys lists the shards (keys "<chunk id>.<index>", not the
// metadata under "qsfs/") in a backend's 0-db namespace over the 0-db
// protocol; the client is the caller's to use and close.
func shardKeys(t testing.TB, ctx context.Context, b gridtypes.ZdbBackend) (*zdbclient.Client, [][]byte) {
	t.Helper()
	c := zdbclient.New(zdbclient.Options{Network: "tcp", Addr: b.Address, Namespace: b.Namespace, Password: b.Password})
	var keys [][]byte
	var cursor []byte
	for {
		ks, next, done, err := c.Scan(ctx, cursor)
		if err != nil {
			c.Close()
			t.Fatalf("scanning %s: %v", b.Address, err)
		}
		for _, k := range ks {
			if !strings.HasPrefix(string(k), "qsfs/") && strings.Contains(string(k), ".") {
				keys = append(keys, k)
			}
		}
		if done {
			return c, keys
		}
		cursor = next
	}
}

// corruptShards overwrites every shard in a backend's namespace, one byte
// of each flipped, and returns how many it changed.
func corruptShards(t testing.TB, b gridtypes.ZdbBackend) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, keys := shardKeys(t, ctx, b)
	defer c.Close()
	n := 0
	for _, k := range keys {
		v, err := c.Get(ctx, k)
		if err != nil {
			t.Fatalf("reading shard %s: %v", k, err)
		}
		if len(v) == 0 {
			continue
		}
		v[len(v)-1] ^= 0xff
		if err := c.Set(ctx, k, v); err != nil {
			t.Fatalf("overwriting shard %s: %v", k, err)
		}
		n++
	}
	return n
}

// countShards is how many shards a backend's namespace holds.
func countShards(t testing.TB, b gridtypes.ZdbBackend) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, keys := shardKeys(t, ctx, b)
	c.Close()
	return len(keys)
}

// TestQSFSVMAcrossNodes: a qsfs whose backends are spread over two hosted
// nodes (a group per node, 2 of 4 shards) is mounted into a VM, which
// writes files through it, one larger than the qsfs's cache, and reads
// them back (checksums) at each step, as the node does through the mount:
//
//  1. the VM's files read back identical on the node;
//  2. every shard on one backend corrupted over the 0-db protocol: the
//     repair loop finds and rebuilds them (metrics and zosctl qsfs status
//     count them), every byte still reads identical;
//  3. node b stopped (expected - minimal = 2 backends and a meta backend
//     down): every byte reads identical from the VM and the node, the
//     metrics show the backends down, and a new write is refused (close
//     fails: the backends up cannot hold it so as to survive a node's
//     loss), never acknowledged; with b back it is written whole;
//  4. a backend replaced through a deployment update: its data moves, the
//     old zdb is deleted, every file still reads;
//  5. the qsfs (and the VM) canceled on node a and the same config deployed
//     on node b: every file comes back from the backends alone; with a
//     wrong key nothing opens and nothing is overwritten.
func TestQSFSVMAcrossNodes(t *testing.T) {
	cache := requireVMPrereqs(t)
	g := startGrid(t)
	farmer := newUser(t, g)
	// A repair every 3 s: the corrupt shards are found within seconds.
	a := vmNode(t, g, farmer, cache, "--qsfs-repair-every", "3s")
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	b := startNode(t, g, farmer.farmToken(farm.ID), "--qsfs-repair-every", "3s")
	b.waitRegistered(farmer)
	u := newUser(t, g)
	w := &qsfsWorld{t: t, a: a, b: b, u: u, zdbs: map[string]qsfsZDB{}}
	w.deployZDBs(a, "d1", "d2", "meta1", "meta2")
	w.deployZDBs(b, "d3", "d4", "meta3")
	key, metaKey := randomKey(t), randomKey(t)
	conf := w.config([]string{"d1", "d2"}, []string{"d3", "d4"}, key, metaKey)

	// The qsfs and a VM mounting it at /qs, with a control volume at /ctl.
	aid := strconv.Itoa(int(a.id))
	u.mustRun("network", "create", "--name", "net", "--nodes", aid, "--ip-range", "10.34.0.0/16")
	root := t.TempDir()
	buildRootfs(t, root)
	for _, app := range []string{"sha256sum", "cut", "dd", "mkdir"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", app)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"qs", "ctl"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "qsfs.sh"), []byte(QSFSScript), 0o755); err != nil {
		t.Fatal(err)
	}
	url := publishFlist(t, u, root, "qsfsvm")
	const qsCache = 8 * gridtypes.Megabyte
	ctl := gridtypes.Workload{Name: "ctl", Type: gridtypes.VolumeType}
	if err := ctl.SetData(&gridtypes.Volume{Size: 10 * gridtypes.Megabyte}); err != nil {
		t.Fatal(err)
	}
	vm := gridtypes.Workload{Name: "vm", Type: gridtypes.ZMachineType}
	if err := vm.SetData(&gridtypes.ZMachine{FList: url, Entrypoint: "/qsfs.sh",
		ComputeCapacity: gridtypes.MachineCapacity{CPU: 1, Memory: 256 * gridtypes.Megabyte},
		Mounts:          []gridtypes.MachineMount{{Name: "qs", Mountpoint: "/qs"}, {Name: "ctl", Mountpoint: "/ctl"}},
		Network:         gridtypes.MachineNetwork{Interfaces: []gridtypes.MachineInterface{{Network: "net", IP: net.ParseIP("10.34.2.20")}}},
	}); err != nil {
		t.Fatal(err)
	}
	qd := &gridtypes.Deployment{Workloads: []gridtypes.Workload{qsfsWorkload(t, "qs", qsCache, conf), ctl, vm}}
	var d gridtypes.Deployment
	u.json(&d, "deploy", "file", "--node", aid, writeJSON(t, qd))
	var res gridtypes.QuantumSafeFSResult
	if err := d.Get("qs").Result.Unmarshal(&res); err != nil || res.Path == "" {
		t.Fatalf("qsfs result %+v: %v", d.Get("qs").Result, err)
	}
	ctlDirs, _ := filepath.Glob(filepath.Join(a.data, "mnt", "*", string(d.WorkloadID("ctl"))))
	if len(ctlDirs) != 1 {
		t.Fatalf("the control volume on the node: got %v, want one directory", ctlDirs)
	}
	phase := func(n int) map[string]string {
		t.Helper()
		if n > 1 {
			if err := os.WriteFile(filepath.Join(ctlDirs[0], "go"+strconv.Itoa(n)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		log := waitConsole(t, u, d.ContractID, "vm", regexp.MustCompile(`(?m)^qsfs-phase `+strconv.Itoa(n)+`\s*$`), 150*time.Second)
		if strings.Contains(log, "qsfs-error") || strings.Contains(log, "unreadable") {
			t.Errorf("the VM could not use the qsfs:\n%s", log)
		}
		return vmSums(log, n)
	}

	// 1. The VM wrote through the mount; the node reads the same bytes.
	want := phase(1)
	t.Logf("the VM wrote: %v", want)
	sameSums(t, "read on the node after the VM wrote", hostSums(t, res.Path), want)
	m := scrape(t, res.MetricsEndpoint)
	if up, total := backendsUp(m); up != 7 || total != 7 {
		t.Errorf("backends up: got %d of %d, want 7 of 7", up, total)
	}
	if ev := metricInt(m, "qsfs_evictions_total"); ev == 0 {
		t.Errorf("qsfs_evictions_total is 0 after writing 18 MiB through an %d-byte cache", qsCache)
	}

	// 2. Every shard on d3 corrupted: found and rebuilt by the repair loop.
	before := scrape(t, res.MetricsEndpoint)
	n := corruptShards(t, w.zdbs["d3"].backend)
	if n == 0 {
		t.Fatal("no shard on d3 to corrupt; the placement should put a quarter of them there")
	}
	// A repair may have run while the shards were overwritten: wait for
	// two more, so that one ran wholly after.
	repairsAfter := func(m map[string]string, k int) {
		t.Helper()
		r := metricInt(m, "qsfs_repairs_total")
		testutil.Eventually(t, 60*time.Second, "two more repairs", func() (bool, error) {
			return metricInt(scrape(t, res.MetricsEndpoint), "qsfs_repairs_total") >= r+k, nil
		})
	}
	repairsAfter(scrape(t, res.MetricsEndpoint), 2)
	m = scrape(t, res.MetricsEndpoint)
	c := metricInt(m, "qsfs_shards_corrupt_total") - metricInt(before, "qsfs_shards_corrupt_total")
	r := metricInt(m, "qsfs_shards_repaired_total") - metricInt(before, "qsfs_shards_repaired_total")
	t.Logf("%d shards on d3 overwritten: %d found corrupt, %d repaired", n, c, r)
	if c == 0 || r < c {
		t.Errorf("%d shards overwritten: got %d found corrupt and %d repaired, want some found and each repaired", n, c, r)
	}
	// The repairs after that find nothing corrupt any more.
	repairsAfter(m, 2)
	if got, was := metricInt(scrape(t, res.MetricsEndpoint), "qsfs_shards_corrupt_total"), metricInt(m, "qsfs_shards_corrupt_total"); got != was {
		t.Errorf("qsfs_shards_corrupt_total went from %d to %d in two more repairs: the repair left corrupt shards", was, got)
	}
	status := u.mustRun("qsfs", "status", strconv.FormatUint(d.ContractID, 10))
	for _, re := range []string{`(?m)^shards found corrupt [1-9]`, `(?m)^shards repaired [1-9]`} {
		if !regexp.MustCompile(re).MatchString(status) {
			t.Errorf("zosctl qsfs status: want a line matching %s:\n%s", re, status)
		}
	}
	sameSums(t, "read on the node after the repair", hostSums(t, res.Path), want)

	// 3. Node b stopped: 2 data backends (group 1) and meta3 down.
	b.stop()
	fetched := metricInt(scrape(t, res.MetricsEndpoint), "qsfs_fetches_total")
	sameSums(t, "read in the VM with node b stopped", phase(2), want)
	sameSums(t, "read on the node with node b stopped", hostSums(t, res.Path), want)
	// 18 MiB read through a cache of 8: most blocks came from node a's
	// two backends alone.
	if f := metricInt(scrape(t, res.MetricsEndpoint), "qsfs_fetches_total") - fetched; f == 0 {
		t.Error("every file read with node b stopped, yet no block fetched from the backends: the test read the cache only")
	} else {
		t.Logf("with node b stopped: %d blocks fetched from node a's backends", f)
	}
	testutil.Eventually(t, 30*time.Second, "the metrics to show node b's backends down", func() (bool, error) {
		up, total := backendsUp(scrape(t, res.MetricsEndpoint))
		return up == 4 && total == 7, fmt.Errorf("%d of %d up", up, total)
	})
	// Bad input: a write the backends up cannot hold durably (losing node
	// a would lose it) is refused at close, not acknowledged.
	late := make([]byte, 100<<10)
	rand.Read(late)
	latePath := filepath.Join(res.Path, "late.bin")
	if err := writeClose(latePath, late); err == nil {
		t.Error("a write with node b stopped was acknowledged; the backends up cannot survive losing node a")
	} else {
		t.Logf("write with node b stopped: %v", err)
	}
	b.start()
	b.waitRegistered(u)
	testutil.Eventually(t, 60*time.Second, "node b's backends up again", func() (bool, error) {
		up, total := backendsUp(scrape(t, res.MetricsEndpoint))
		return up == 7, fmt.Errorf("%d of %d up", up, total)
	})
	// The chunks rewritten on node a alone while b was down are spread
	// again so as to survive losing a node.
	m = scrape(t, res.MetricsEndpoint)
	repairsAfter(m, 2)
	if d := metricInt(scrape(t, res.MetricsEndpoint), "qsfs_repair_degraded_chunks"); d != 0 {
		t.Errorf("with node b back, the last repair left %d chunks that a node's loss would lose", d)
	}
	// The refused write is still there to retry: fsync now makes it
	// durable, whole.
	if err := fsyncFile(latePath); err != nil {
		t.Errorf("fsync of the refused write with node b back: %v", err)
	}
	if got, err := os.ReadFile(latePath); err != nil || !bytes.Equal(got, late) {
		t.Errorf("the refused write after node b came back: got %d bytes, %v; want the %d written", len(got), err, len(late))
	}

	// 4. d4 replaced by d5 through a deployment update; d4 deleted.
	w.deployZDBs(b, "d5")
	held := countShards(t, w.zdbs["d4"].backend)
	conf2 := w.config([]string{"d1", "d2"}, []string{"d3", "d5"}, key, metaKey)
	qd.Workloads[0] = qsfsWorkload(t, "qs", qsCache, conf2)
	var upd gridtypes.Deployment
	u.json(&upd, "deployment", "update", "-f", writeJSON(t, qd), strconv.FormatUint(d.ContractID, 10))
	if st := upd.Get("qs").Result.State; st != gridtypes.StateOk {
		t.Fatalf("qsfs after the backend update: %s %s", st, upd.Get("qs").Result.Error)
	}
	if got := countShards(t, w.zdbs["d5"].backend); got == 0 {
		t.Error("d5 holds no shard after replacing d4: the update moved nothing")
	} else {
		t.Logf("d4 held %d shards; d5 holds %d after replacing it; the new engine's repairs rewrote %d", held, got,
			metricInt(scrape(t, res.MetricsEndpoint), "qsfs_shards_repaired_total"))
	}
	u.mustRun("deployment", "cancel", strconv.FormatUint(w.zdbs["d4"].contract, 10))
	sameSums(t, "read in the VM with d4 replaced and deleted", phase(3), want)
	sameSums(t, "read on the node with d4 replaced and deleted", hostSums(t, res.Path), want)
	if up, total := backendsUp(scrape(t, res.MetricsEndpoint)); up != 7 || total != 7 {
		t.Errorf("backends up after the replacement: got %d of %d, want 7 of 7", up, total)
	}

	// 5. The qsfs canceled on node a (flushed, its cache gone) and its
	// config deployed on node b: the backends alone hold every file. A
	// wrong key first: refused, nothing overwritten.
	u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
	bid := strconv.Itoa(int(b.id))
	wrong := conf2
	wrong.Encryption.Key = randomKey(t)
	wrong.Meta.Config.Encryption.Key = randomKey(t)
	out, errs, code := u.run("deploy", "file", "--node", bid, writeJSON(t, &gridtypes.Deployment{
		Workloads: []gridtypes.Workload{qsfsWorkload(t, "qs", qsCache, wrong)}}))
	if code == 0 || !strings.Contains(errs, "key") {
		t.Errorf("a qsfs with the wrong keys: got exit %d, want an error about the key:\n%s%s", code, out, errs)
	} else {
		t.Logf("a qsfs with the wrong keys: %s", strings.TrimSpace(errs))
	}
	var d2 gridtypes.Deployment
	u.json(&d2, "deploy", "file", "--node", bid, writeJSON(t, &gridtypes.Deployment{
		Workloads: []gridtypes.Workload{qsfsWorkload(t, "qs", qsCache, conf2)}}))
	var res2 gridtypes.QuantumSafeFSResult
	if err := d2.Get("qs").Result.Unmarshal(&res2); err != nil || res2.Path == "" {
		t.Fatalf("qsfs on node b: %+v: %v", d2.Get("qs").Result, err)
	}
	sameSums(t, "read on node b from the backends alone", hostSums(t, res2.Path), want)
	if got, err := os.ReadFile(filepath.Join(res2.Path, "late.bin")); err != nil || !bytes.Equal(got, late) {
		t.Errorf("late.bin on node b: got %d bytes, %v; want the %d written", len(got), err, len(late))
	}
	if f := metricInt(scrape(t, res2.MetricsEndpoint), "qsfs_fetches_total"); f == 0 {
		t.Error("node b read every file without fetching a block from the backends")
	}
	// Node b's first repair finds every shard where the metadata says, on
	// the configured backends: none was left on the deleted d4.
	testutil.Eventually(t, 30*time.Second, "a repair on node b", func() (bool, error) {
		return metricInt(scrape(t, res2.MetricsEndpoint), "qsfs_repairs_total") >= 1, nil
	})
	m = scrape(t, res2.MetricsEndpoint)
	if miss, fixed := metricInt(m, "qsfs_shards_missing_total"), metricInt(m, "qsfs_shards_repaired_total"); miss != 0 || fixed != 0 {
		t.Errorf("node b's repair found %d shards missing and rewrote %d; want 0 and 0 (the update moved d4's shards)", miss, fixed)
	}
}

// writeClose writes data to a new file and closes it: close is where the
// qsfs makes the write durable, and reports when it cannot.
func writeClose(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	return errors.Join(werr, f.Close())
}

func fsyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
