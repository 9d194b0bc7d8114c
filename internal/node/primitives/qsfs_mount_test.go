package primitives

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	sysfuse "github.com/zos-go/zos/internal/sys/fuse"
	"github.com/zos-go/zos/internal/testutil"
)

// Root tests: the qsfs manager on real btrfs pools (the cache volume), a
// real FUSE mount, and real 0-db backends in this process.

const qsCache = 8 << 20

func qsfsSetup(t *testing.T) (*storage.Module, *qsCluster, *QSFSManager) {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat("/dev/fuse"); err != nil {
		testutil.Skip(t, "no /dev/fuse")
	}
	st := startStorage(t, storage.HostedDisk{Type: storage.SSD, Size: 1 << 30})
	c := newQSCluster(t)
	m := NewQSFSManager(testQSFSConfig(t), st, testutil.Logger(t))
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("closing the qsfs manager: %v", err)
		}
	})
	return st, c, m
}

func qsWorkload(name string, conf gridtypes.QuantumSafeConfig) *provision.Workload {
	return workload(7, name, gridtypes.QuantumSafeFSType, gridtypes.QuantumSafeFS{Cache: qsCache, Config: conf})
}

func provisionQSFS(t *testing.T, m *QSFSManager, wl *provision.Workload) gridtypes.QuantumSafeFSResult {
	t.Helper()
	res, err := m.Provision(context.Background(), wl)
	if err != nil {
		t.Fatalf("provisioning qsfs %s: %v", wl.Name, err)
	}
	r := res.(gridtypes.QuantumSafeFSResult)
	if !mounted(t, r.Path) {
		t.Fatalf("qsfs %s: %s is not mounted", wl.Name, r.Path)
	}
	return r
}

// mounted tells whether dir is a mount point (in this namespace).
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// writeTree writes files through the mount: small ones, a nested
// directory, and one larger than the cache; it returns their content.
func writeTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, qsCache+qsCache/2)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	files := map[string][]byte{
		"hello.txt":       []byte("unbreakable storage\n"),
		"docs/a/b/c.txt":  bytes.Repeat([]byte("deep "), 30000),
		"docs/empty":      {},
		"big-than-cache":  big,
		"docs/notes.json": []byte(`{"k": 1}`),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatalf("writing %s through the mount: %v", name, err)
		}
	}
	// A close after a write syncs every change before it, also the ones
	// without a write (the empty file, the directories).
	files["synced"] = []byte("last\n")
	if err := os.WriteFile(filepath.Join(dir, "synced"), files["synced"], 0o644); err != nil {
		t.Fatal(err)
	}
	return files
}

func checkTree(t *testing.T, dir string, want map[string][]byte) {
	t.Helper()
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("reading %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s: got %d bytes, want the %d written (identical)", name, len(got), len(data))
		}
	}
}

// metricValue is the value of an unlabelled metric in a scrape.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no metric %s in\n%s", name, body)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A qsfs is provisioned over real 0-db backends and mounted; files
// written through its path (one larger than the cache) are on the
// backends once deprovisioned (flushed, unmounted, cache volume deleted,
// metrics listener closed); the same config provisioned again with a
// fresh cache gives every file back identical, fetched from the backends.
// The metrics endpoint shows the uploads and the fetches.
func TestQSFSProvisionDeprovisionRecover(t *testing.T) {
	st, c, m := qsfsSetup(t)
	wl := qsWorkload("qs", c.conf)
	res := provisionQSFS(t, m, wl)
	if _, err := st.VolumeLookup(qsfsVolume(wl.ID)); err != nil {
		t.Errorf("cache volume: %v", err)
	}
	files := writeTree(t, res.Path)
	checkTree(t, res.Path, files)
	code, body := scrape(t, res.MetricsEndpoint)
	if code != http.StatusOK {
		t.Fatalf("metrics: got %d, want 200", code)
	}
	if up := metricValue(t, body, "qsfs_upload_bytes_total"); up < qsCache {
		t.Errorf("metrics: got %v bytes uploaded, want at least the cache size (the big file streamed through)", up)
	}
	if cache, max := metricValue(t, body, "qsfs_cache_bytes"), metricValue(t, body, "qsfs_cache_max_bytes"); cache > max || max > qsCache {
		t.Errorf("metrics: cache %v bytes of %v max, want within the workload's %d", cache, max, qsCache)
	}
	if again := provisionQSFS(t, m, wl); again != res {
		t.Errorf("provisioning again: got %+v, want the same %+v", again, res)
	}

	if err := m.Deprovision(context.Background(), wl); err != nil {
		t.Fatalf("deprovisioning: %v", err)
	}
	if mounted(t, res.Path) {
		t.Errorf("%s still mounted after deprovision", res.Path)
	}
	if _, err := st.VolumeLookup(qsfsVolume(wl.ID)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("cache volume after deprovision: got %v, want not found", err)
	}
	if _, err := (&http.Client{}).Get(res.MetricsEndpoint); err == nil {
		t.Errorf("metrics endpoint still answers after deprovision")
	}

	wl2 := qsWorkload("qs-again", c.conf)
	res2 := provisionQSFS(t, m, wl2)
	checkTree(t, res2.Path, files)
	_, body = scrape(t, res2.MetricsEndpoint)
	if f := metricValue(t, body, "qsfs_fetch_bytes_total"); f < float64(len(files["big-than-cache"])) {
		t.Errorf("metrics: got %v bytes fetched, want every file's blocks from the backends", f)
	}
	if err := m.Deprovision(context.Background(), wl2); err != nil {
		t.Fatal(err)
	}
}

// A node process that crashed leaves its FUSE mount behind, dead, and the
// cache volume. The next process's Provision of the workload (it ran
// before) detaches the stale mount and mounts again from the cache and
// the backends, at the same path and metrics endpoint: every synced file
// is there.
func TestQSFSReadoptAfterCrash(t *testing.T) {
	st, c, m := qsfsSetup(t)
	wl := qsWorkload("qs", c.conf)
	res := provisionQSFS(t, m, wl)
	files := writeTree(t, res.Path)

	// The crash: the first process's engine, repair loop and metrics
	// stop; its mount stays.
	m.mu.Lock()
	old := m.running[wl.ID]
	delete(m.running, wl.ID)
	m.mu.Unlock()
	old.stop()
	<-old.done
	old.metrics.close()
	old.store.Close()
	t.Cleanup(func() { old.fs.Abort() })
	if !mounted(t, res.Path) {
		t.Fatal("the crashed process's mount is gone; the test wants it stale")
	}

	m2 := NewQSFSManager(m.cfg, st, testutil.Logger(t))
	t.Cleanup(func() { m2.Close() })
	wl.Result.State = gridtypes.StateOk
	res2 := provisionQSFS(t, m2, wl)
	if res2 != res {
		t.Errorf("re-adopted: got %+v, want the same path and endpoint %+v", res2, res)
	}
	checkTree(t, res2.Path, files)
	if code, _ := scrape(t, res2.MetricsEndpoint); code != http.StatusOK {
		t.Errorf("metrics after re-adoption: got %d, want 200", code)
	}
	if err := m2.Deprovision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}
}

// Bad input through Provision: a workload error, and nothing made: no
// cache volume, nothing mounted. A wrong key on a qsfs holding data
// decrypts nothing and overwrites nothing: the right config mounts it
// afterwards with every file.
func TestQSFSProvisionBadInputLeavesNothing(t *testing.T) {
	st, c, m := qsfsSetup(t)
	wl := qsWorkload("qs", c.conf)
	res := provisionQSFS(t, m, wl)
	files := map[string][]byte{"kept.txt": bytes.Repeat([]byte("x"), 200000)}
	if err := os.WriteFile(filepath.Join(res.Path, "kept.txt"), files["kept.txt"], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Deprovision(context.Background(), wl); err != nil {
		t.Fatal(err)
	}

	bad := func(name string, f func(q *gridtypes.QuantumSafeConfig)) *provision.Workload {
		q := c.conf
		q.Groups = nil
		for _, g := range c.conf.Groups {
			q.Groups = append(q.Groups, gridtypes.ZdbGroup{Backends: append([]gridtypes.ZdbBackend(nil), g.Backends...)})
		}
		q.Meta.Config.Backends = append([]gridtypes.ZdbBackend(nil), c.conf.Meta.Config.Backends...)
		f(&q)
		return qsWorkload(name, q)
	}
	tests := []struct {
		wl   *provision.Workload
		want string
	}{
		{bad("wrong-key", func(q *gridtypes.QuantumSafeConfig) { q.Encryption.Key = qsKey(t) }), "key"},
		{bad("wrong-passwords", func(q *gridtypes.QuantumSafeConfig) {
			for gi := range q.Groups {
				for bi := range q.Groups[gi].Backends {
					q.Groups[gi].Backends[bi].Password = "wrong"
				}
			}
		}), "the backends do not take a write"},
		{bad("meta-unreachable", func(q *gridtypes.QuantumSafeConfig) {
			for i := range q.Meta.Config.Backends {
				q.Meta.Config.Backends[i].Address = "127.0.0.1:" + strconv.Itoa(1+i) // nothing listens
			}
		}), "meta backends unavailable"},
		{bad("too-few-shards-possible", func(q *gridtypes.QuantumSafeConfig) { q.Groups = q.Groups[:1] }), "placement impossible"},
	}
	for _, tt := range tests {
		t.Run(tt.wl.Name, func(t *testing.T) {
			_, err := m.Provision(context.Background(), tt.wl)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want refused with %q", err, tt.want)
			}
			if _, err := st.VolumeLookup(qsfsVolume(tt.wl.ID)); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("cache volume after a refusal: got %v, want none", err)
			}
			if dir := filepath.Join(m.cfg.Root, string(tt.wl.ID)); mounted(t, dir) {
				t.Errorf("%s mounted after a refusal", dir)
				sysfuse.LazyUnmount(dir)
			}
			if _, err := m.MountPath(tt.wl.ID); err == nil {
				t.Error("the refused qsfs has a mount path")
			}
		})
	}
	wl2 := qsWorkload("qs-right", c.conf)
	res2 := provisionQSFS(t, m, wl2)
	checkTree(t, res2.Path, files)
	if err := m.Deprovision(context.Background(), wl2); err != nil {
		t.Fatal(err)
	}
}

// An update replacing a data backend moves its shards onto the new one
// while the qsfs stays mounted (a repair before the new backends serve):
// afterwards no shard is missing with the old backend stopped, and a fresh
// mount of the new config reads every file. Changing anything else is
// refused and the qsfs runs on unchanged.
func TestQSFSUpdateReplacesBackend(t *testing.T) {
	_, c, m := qsfsSetup(t)
	wl := qsWorkload("qs", c.conf)
	res := provisionQSFS(t, m, wl)
	files := writeTree(t, res.Path)

	// Refused: a key change, and two data backends in two groups at once.
	for _, f := range []func(q *gridtypes.QuantumSafeConfig){
		func(q *gridtypes.QuantumSafeConfig) { q.Encryption.Key = qsKey(t) },
		func(q *gridtypes.QuantumSafeConfig) {
			q.Groups = []gridtypes.ZdbGroup{
				{Backends: []gridtypes.ZdbBackend{startQSBackend(t).zdb(), q.Groups[0].Backends[1]}},
				{Backends: []gridtypes.ZdbBackend{startQSBackend(t).zdb(), q.Groups[1].Backends[1]}},
				q.Groups[2],
			}
		},
	} {
		q := c.conf
		f(&q)
		_, err := m.Update(context.Background(), qsWorkload("qs", q))
		var unchanged *provision.UnchangedError
		if !errors.As(err, &unchanged) {
			t.Errorf("refused update: got %v, want unchanged", err)
		}
	}
	checkTree(t, res.Path, files)

	fresh := startQSBackend(t)
	q := c.conf
	q.Groups = []gridtypes.ZdbGroup{
		{Backends: []gridtypes.ZdbBackend{fresh.zdb(), c.conf.Groups[0].Backends[1]}},
		c.conf.Groups[1], c.conf.Groups[2],
	}
	upd := qsWorkload("qs", q)
	got, err := m.Update(context.Background(), upd)
	if err != nil {
		t.Fatalf("replacing a backend: %v", err)
	}
	if got.(gridtypes.QuantumSafeFSResult) != res {
		t.Errorf("update result: got %+v, want %+v", got, res)
	}
	c.groups[0][0].Stop()
	m.mu.Lock()
	in := m.running[wl.ID]
	m.mu.Unlock()
	rep, err := in.store.Repair(context.Background())
	if err != nil || rep.ShardsMissing != 0 || rep.Unrecoverable != 0 {
		t.Errorf("repair after the update, old backend stopped: got %+v, %v; want no shard missing", rep, err)
	}
	if fresh.stop == nil {
		t.Fatal("the new backend stopped")
	}
	checkTree(t, res.Path, files)
	_, body := scrape(t, res.MetricsEndpoint)
	if moved := metricValue(t, body, "qsfs_shards_repaired_total"); moved == 0 {
		t.Errorf("metrics: got %v shards repaired, want the moved ones", moved)
	}
	if err := m.Deprovision(context.Background(), upd); err != nil {
		t.Fatal(err)
	}
	res2 := provisionQSFS(t, m, qsWorkload("qs-new", q))
	checkTree(t, res2.Path, files)
	if err := m.Deprovision(context.Background(), qsWorkload("qs-new", q)); err != nil {
		t.Fatal(err)
	}
}
