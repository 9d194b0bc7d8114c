package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/qsfs"
)

// zdbDeployment is a deployment of zdb workloads with their results, as a
// node returns it.
func zdbDeployment(t *testing.T, states map[string]gridtypes.ResultState, names ...string) *gridtypes.Deployment {
	d := &gridtypes.Deployment{ContractID: 9}
	for i, n := range names {
		wl := gridtypes.Workload{Name: n, Type: gridtypes.ZDBType}
		if err := wl.SetData(&gridtypes.ZDB{Size: 1 << 30, Mode: "user", Password: "pw-" + n}); err != nil {
			t.Fatal(err)
		}
		st := gridtypes.StateOk
		if s, ok := states[n]; ok {
			st = s
		}
		res, _ := json.Marshal(gridtypes.ZDBResult{Namespace: "ns-" + n, IPs: []string{"10.0.0.1"}, Port: uint(9900 + i)})
		wl.Result = gridtypes.Result{State: st, Data: res}
		d.Workloads = append(d.Workloads, wl)
	}
	return d
}

// deploy qsfs builds its config from a zdb deployment: meta* workloads are
// the meta backends, every other one a group; each backend's address,
// namespace and password come from the workload; the keys are new and
// distinct; the engine accepts the config. Too few zdbs, or one not
// running, is refused with the reason.
func TestQSFSConfigFromZDBs(t *testing.T) {
	conf, err := qsfsConfig(zdbDeployment(t, nil, "a", "b", "c", "meta1"), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(conf.Groups) != 3 || len(conf.Meta.Config.Backends) != 1 || conf.MinimalShards != 2 || conf.ExpectedShards != 3 {
		t.Errorf("got %d groups, %d meta, %d of %d shards; want 3 groups, 1 meta, 2 of 3", len(conf.Groups), len(conf.Meta.Config.Backends), conf.MinimalShards, conf.ExpectedShards)
	}
	if b := conf.Groups[1].Backends[0]; b != (gridtypes.ZdbBackend{Address: "10.0.0.1:9901", Namespace: "ns-b", Password: "pw-b"}) {
		t.Errorf("group 1: got %+v, want zdb b's address, namespace and password", b)
	}
	if len(conf.Encryption.Key) != 32 || bytes.Equal(conf.Encryption.Key, conf.Meta.Config.Encryption.Key) {
		t.Errorf("keys: got %d bytes, equal %v; want 32 bytes each, distinct", len(conf.Encryption.Key), bytes.Equal(conf.Encryption.Key, conf.Meta.Config.Encryption.Key))
	}
	if _, err := qsfs.ConfigFrom(conf); err != nil {
		t.Errorf("the engine refuses the config: %v", err)
	}
	q := gridtypes.QuantumSafeFS{Cache: 1 << 30, Config: conf}
	if err := q.Valid(nil); err != nil {
		t.Errorf("the workload is invalid: %v", err)
	}

	for _, tt := range []struct {
		name string
		d    *gridtypes.Deployment
		want string
	}{
		{"no meta", zdbDeployment(t, nil, "a", "b", "c"), "want at least 2 data and 1 meta"},
		{"one data", zdbDeployment(t, nil, "a", "meta"), "want at least 2 data and 1 meta"},
		{"one not running", zdbDeployment(t, map[string]gridtypes.ResultState{"b": gridtypes.StateError}, "a", "b", "c", "meta"), "zdb b is error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := qsfsConfig(tt.d, 0, 0); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want refused with %q", err, tt.want)
			}
		})
	}
}
