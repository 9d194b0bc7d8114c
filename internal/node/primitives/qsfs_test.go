package primitives

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/qsfs/fs"
	"github.com/zos-go/zos/internal/node/vm"
	"github.com/zos-go/zos/internal/qsfs"
	"github.com/zos-go/zos/internal/testutil"
)

// An update may change only backends, and only as many data backends at
// once as the config survives losing (redundant_nodes backends, or
// backends in at most redundant_groups groups), keeping a majority of the
// meta backends; anything else is refused with the reason.
func TestQSFSBackendChange(t *testing.T) {
	b := func(a string) gridtypes.ZdbBackend {
		return gridtypes.ZdbBackend{Address: a, Namespace: "ns", Password: "p"}
	}
	base := gridtypes.QuantumSafeConfig{
		MinimalShards: 4, ExpectedShards: 6, RedundantGroups: 1, RedundantNodes: 1,
		Encryption: gridtypes.Encryption{Algorithm: "AES", Key: bytes.Repeat([]byte{1}, 32)},
		Meta: gridtypes.QuantumSafeMeta{Type: "zdb", Config: gridtypes.QuantumSafeMetaConfig{
			Prefix: "qs", Encryption: gridtypes.Encryption{Key: bytes.Repeat([]byte{2}, 32)},
			Backends: []gridtypes.ZdbBackend{b("m1:1"), b("m2:1"), b("m3:1")}}},
		Groups: []gridtypes.ZdbGroup{
			{Backends: []gridtypes.ZdbBackend{b("a1:1"), b("a2:1")}},
			{Backends: []gridtypes.ZdbBackend{b("b1:1"), b("b2:1")}},
			{Backends: []gridtypes.ZdbBackend{b("c1:1"), b("c2:1")}},
		},
	}
	clone := func(f func(c *gridtypes.QuantumSafeConfig)) gridtypes.QuantumSafeConfig {
		c := base
		c.Groups = nil
		for _, g := range base.Groups {
			c.Groups = append(c.Groups, gridtypes.ZdbGroup{Backends: append([]gridtypes.ZdbBackend(nil), g.Backends...)})
		}
		c.Meta.Config.Backends = append([]gridtypes.ZdbBackend(nil), base.Meta.Config.Backends...)
		f(&c)
		return c
	}
	tests := []struct {
		name string
		to   gridtypes.QuantumSafeConfig
		want string // "" accepted
	}{
		{"nothing changes", clone(func(*gridtypes.QuantumSafeConfig) {}), ""},
		{"one data backend replaced", clone(func(c *gridtypes.QuantumSafeConfig) { c.Groups[0].Backends[0] = b("new:1") }), ""},
		{"a whole group replaced", clone(func(c *gridtypes.QuantumSafeConfig) {
			c.Groups[1].Backends = []gridtypes.ZdbBackend{b("n1:1"), b("n2:1")}
		}), ""},
		{"a backend added", clone(func(c *gridtypes.QuantumSafeConfig) { c.Groups[2].Backends = append(c.Groups[2].Backends, b("c3:1")) }), ""},
		{"one meta backend replaced", clone(func(c *gridtypes.QuantumSafeConfig) { c.Meta.Config.Backends[2] = b("m4:1") }), ""},
		{"two backends in two groups", clone(func(c *gridtypes.QuantumSafeConfig) {
			c.Groups[0].Backends[0], c.Groups[1].Backends[0] = b("n1:1"), b("n2:1")
		}), "removing 2 data backends in 2 groups"},
		{"meta majority replaced", clone(func(c *gridtypes.QuantumSafeConfig) {
			c.Meta.Config.Backends[1], c.Meta.Config.Backends[2] = b("m4:1"), b("m5:1")
		}), "a majority must stay"},
		{"data key changed", clone(func(c *gridtypes.QuantumSafeConfig) { c.Encryption.Key = bytes.Repeat([]byte{3}, 32) }), "only the backends"},
		{"shards changed", clone(func(c *gridtypes.QuantumSafeConfig) { c.MinimalShards = 3 }), "only the backends"},
		{"prefix changed", clone(func(c *gridtypes.QuantumSafeConfig) { c.Meta.Config.Prefix = "other" }), "only the backends"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := backendChange(base, tt.to)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want accepted", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want refused with %q", err, tt.want)
			}
		})
	}
}

// Bad input is refused before anything is made, with the reason: fewer
// live backends than minimal_shards, a wrong data or meta backend
// password, unreachable meta backends, backends the node's egress policy
// refuses (here: loopback under the zero policy), and a wrong key on a
// store holding data, which decrypts nothing and overwrites nothing (the
// right key still reads every byte afterwards).
func TestQSFSOpenStoreRefusesBadInput(t *testing.T) {
	c := newQSCluster(t)
	m := NewQSFSManager(testQSFSConfig(t), nil, testutil.Logger(t))
	ctx := context.Background()
	s, err := m.openStore(ctx, c.conf)
	if err != nil {
		t.Fatalf("opening over healthy backends: %v", err)
	}
	data := bytes.Repeat([]byte("unbreakable "), 20000)
	if err := s.Put(ctx, "keep", data); err != nil {
		t.Fatal(err)
	}
	s.Close()

	with := func(f func(q *gridtypes.QuantumSafeConfig)) gridtypes.QuantumSafeConfig {
		q := c.conf
		q.Groups = nil
		for _, g := range c.conf.Groups {
			q.Groups = append(q.Groups, gridtypes.ZdbGroup{Backends: append([]gridtypes.ZdbBackend(nil), g.Backends...)})
		}
		q.Meta.Config.Backends = append([]gridtypes.ZdbBackend(nil), c.conf.Meta.Config.Backends...)
		f(&q)
		return q
	}
	tests := []struct {
		name    string
		m       *QSFSManager
		conf    gridtypes.QuantumSafeConfig
		wantErr error
		want    string
	}{
		{"wrong data backend passwords", m, with(func(q *gridtypes.QuantumSafeConfig) {
			for gi := range q.Groups {
				for bi := range q.Groups[gi].Backends {
					if bi == 0 {
						q.Groups[gi].Backends[bi].Password = "wrong"
					}
				}
			}
		}), nil, "the backends do not take a write"},
		{"wrong meta backend passwords", m, with(func(q *gridtypes.QuantumSafeConfig) {
			for i := range q.Meta.Config.Backends {
				q.Meta.Config.Backends[i].Password = "wrong"
			}
		}), qsfs.ErrMetaUnavailable, ""},
		{"wrong data key", m, with(func(q *gridtypes.QuantumSafeConfig) { q.Encryption.Key = qsKey(t) }), qsfs.ErrWrongKey, ""},
		{"wrong meta key", m, with(func(q *gridtypes.QuantumSafeConfig) { q.Meta.Config.Encryption.Key = qsKey(t) }), qsfs.ErrWrongKey, ""},
		{"egress policy refuses the backends", NewQSFSManager(QSFSConfig{Egress: &egress.Policy{}}, nil, testutil.Logger(t)),
			c.conf, qsfs.ErrMetaUnavailable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.m.openStore(ctx, tt.conf)
			if err == nil {
				s.Close()
				t.Fatal("got a store, want refused")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
			if tt.want != "" && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), qsPass) {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}

	// The refusals overwrote nothing: the right config reads every byte.
	s, err = qsfs.New(mustEngineConfig(t, m, c.conf), testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "keep")
	s.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("reading back after the refusals: got %d bytes, %v; want the %d bytes written", len(got), err, len(data))
	}

	// Live backends fewer than minimal_shards: 3 of 6 stopped.
	c.groups[0][0].Stop()
	c.groups[1][0].Stop()
	c.groups[2][0].Stop()
	if s, err := m.openStore(ctx, c.conf); err == nil {
		s.Close()
		t.Error("3 of 6 data backends live, 4 shards minimal: got a store, want refused")
	} else if !errors.Is(err, qsfs.ErrTooFewBackends) && !errors.Is(err, qsfs.ErrNotDurable) {
		t.Errorf("3 of 6 data backends live: got %v, want too few backends", err)
	}
	// Unreachable meta backends.
	for _, b := range c.meta {
		b.Stop()
	}
	if s, err := m.openStore(ctx, c.conf); !errors.Is(err, qsfs.ErrMetaUnavailable) {
		if err == nil {
			s.Close()
		}
		t.Errorf("meta backends stopped: got %v, want %v", err, qsfs.ErrMetaUnavailable)
	}
}

func mustEngineConfig(t *testing.T, m *QSFSManager, q gridtypes.QuantumSafeConfig) qsfs.Config {
	t.Helper()
	c, err := m.engineConfig(q)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The metrics endpoint answers in the Prometheus text format with the
// engine's and the file system's figures (objects and bytes stored,
// backend health, cache, backlog), at a secret path only: any other path
// is 404, and no backend address or password appears.
func TestQSFSMetricsEndpoint(t *testing.T) {
	c := newQSCluster(t)
	m := NewQSFSManager(testQSFSConfig(t), nil, testutil.Logger(t))
	ctx := context.Background()
	s, err := m.openStore(ctx, c.conf)
	if err != nil {
		t.Fatal(err)
	}
	store := &swapStore{s: s}
	defer store.Close()
	// The file system unmounted (no FUSE needed): its counters are real.
	f, err := fs.New(fs.Config{CacheDir: t.TempDir(), CacheSize: 8 << 20, BlockSize: 64 << 10,
		IsNotFound: func(err error) bool { return errors.Is(err, qsfs.ErrNotFound) }}, store, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	in := &qsfsInstance{store: store, fs: f}
	state, err := loadMetricsState(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mt, err := serveMetrics("127.0.0.1", state, in, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer mt.close()

	if err := s.Put(ctx, "a", make([]byte, 100000)); err != nil {
		t.Fatal(err)
	}
	c.groups[1][1].Stop()
	// The stopped backend fails this write's shard (the Put may still
	// succeed on the others) and is marked down.
	_ = s.Put(ctx, "b", make([]byte, 300000))

	code, body := scrape(t, mt.endpoint)
	if code != http.StatusOK {
		t.Fatalf("GET the endpoint: got %d, want 200", code)
	}
	st := s.Status()
	for _, want := range []string{
		"# TYPE qsfs_backend_up gauge",
		`qsfs_backend_up{kind="data",group="0",index="0"} 1`,
		`qsfs_backend_up{kind="data",group="1",index="1"} 0`,
		`qsfs_backend_up{kind="meta",group="-1",index="2"} 1`,
		fmt.Sprintf("qsfs_objects %d", st.Objects),
		fmt.Sprintf("qsfs_stored_bytes %d", st.Bytes),
		"qsfs_cache_max_bytes 8388608",
		"qsfs_upload_backlog_bytes 0",
		"# TYPE qsfs_shards_repaired_total counter",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics: no line %q in\n%s", want, body)
		}
	}
	if st.Objects < 2 || st.Bytes < 100000 {
		t.Errorf("status: got %d objects, %d bytes; want the probe and the objects written", st.Objects, st.Bytes)
	}
	if strings.Contains(body, "127.0.0.1") || strings.Contains(body, qsPass) {
		t.Errorf("metrics show a backend address or password:\n%s", body)
	}
	for _, path := range []string{"/metrics", "/", "/" + strings.Repeat("0", 32) + "/metrics"} {
		url := "http://" + state.addr("127.0.0.1") + path
		if code, _ := scrape(t, url); code != http.StatusNotFound {
			t.Errorf("GET %s (without the secret path): got %d, want 404", path, code)
		}
	}
}

// A zmachine mounting a qsfs by name gets its mount path shared over
// virtiofs at the mount point; a qsfs not mounted, or a node without the
// qsfs manager, fails the VM with the reason.
func TestZMachineSharesQSFS(t *testing.T) {
	d := &gridtypes.Deployment{TwinID: 3, ContractID: 4, Workloads: []gridtypes.Workload{
		{Name: "qs", Type: gridtypes.QuantumSafeFSType}, {Name: "vm", Type: gridtypes.ZMachineType},
	}}
	wl := &provision.Workload{Workload: d.Workloads[1], ID: d.WorkloadID("vm"), Deployment: d}
	data := &gridtypes.ZMachine{Mounts: []gridtypes.MachineMount{{Name: "qs", Mountpoint: "/data"}}}
	qm := NewQSFSManager(QSFSConfig{}, nil, testutil.Logger(t))

	var s vm.Spec
	err := (&ZMachineManager{QSFS: qm}).devices(&s, wl, data, 0)
	if err == nil || !strings.Contains(err.Error(), "is not mounted") {
		t.Errorf("a qsfs not mounted: got %v, want refused", err)
	}
	if err := (&ZMachineManager{}).devices(&s, wl, data, 0); err == nil || !strings.Contains(err.Error(), "runs no qsfs") {
		t.Errorf("no qsfs manager: got %v, want refused", err)
	}
	qm.running[d.WorkloadID("qs")] = &qsfsInstance{dir: "/var/lib/zos/qsfs/3-4-qs"}
	if err := (&ZMachineManager{QSFS: qm}).devices(&s, wl, data, 0); err != nil {
		t.Fatal(err)
	}
	want := []vm.Share{{Dir: "/var/lib/zos/qsfs/3-4-qs", Mountpoint: "/data"}}
	if !reflect.DeepEqual(s.Shares, want) {
		t.Errorf("shares: got %+v, want %+v", s.Shares, want)
	}
}
