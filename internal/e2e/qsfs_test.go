package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
)

// TestQSFS: a user deploys four 0-db namespaces (three data backends in
// three groups, one meta) as zdb workloads, then a qsfs over them; files
// written through the qsfs path on the node (one larger than its cache)
// are flushed to the backends when the qsfs is canceled, and the same
// config deployed again with a fresh cache gives every file back
// identical. The metrics endpoint answers with the backends up.
func TestQSFS(t *testing.T) {
	_, n, u := setup(t)
	node := strconv.Itoa(int(n.id))

	var zd gridtypes.Deployment
	names := []string{"d1", "d2", "d3", "m1"}
	var zwls []gridtypes.Workload
	for _, name := range names {
		wl := gridtypes.Workload{Name: name, Type: gridtypes.ZDBType}
		wl.SetData(&gridtypes.ZDB{Size: 256 * gridtypes.Megabyte, Mode: "user", Password: "pw-" + name})
		zwls = append(zwls, wl)
	}
	u.json(&zd, "deploy", "file", "--node", node, writeJSON(t, &gridtypes.Deployment{Workloads: zwls}))
	backend := func(name string) gridtypes.ZdbBackend {
		r := zdbResult(t, &zd, name)
		if len(r.IPs) == 0 {
			t.Fatalf("zdb %s: no address in %+v", name, r)
		}
		return gridtypes.ZdbBackend{Address: net.JoinHostPort(r.IPs[0], strconv.Itoa(int(r.Port))), Namespace: r.Namespace, Password: "pw-" + name}
	}
	key := func() gridtypes.Bytes {
		k := make([]byte, 32)
		rand.Read(k)
		return k
	}
	conf := gridtypes.QuantumSafeConfig{
		MinimalShards: 2, ExpectedShards: 3, RedundantGroups: 1, RedundantNodes: 1,
		Encryption: gridtypes.Encryption{Algorithm: "AES", Key: key()},
		Meta: gridtypes.QuantumSafeMeta{Type: "zdb", Config: gridtypes.QuantumSafeMetaConfig{
			Prefix: "e2e", Encryption: gridtypes.Encryption{Algorithm: "AES", Key: key()},
			Backends: []gridtypes.ZdbBackend{backend("m1")}}},
		Groups: []gridtypes.ZdbGroup{
			{Backends: []gridtypes.ZdbBackend{backend("d1")}},
			{Backends: []gridtypes.ZdbBackend{backend("d2")}},
			{Backends: []gridtypes.ZdbBackend{backend("d3")}},
		},
		Compression: gridtypes.QuantumCompression{Algorithm: "snappy"},
	}
	const cache = 8 * gridtypes.Megabyte
	deployQSFS := func(name string) (gridtypes.Deployment, gridtypes.QuantumSafeFSResult) {
		t.Helper()
		wl := gridtypes.Workload{Name: name, Type: gridtypes.QuantumSafeFSType}
		wl.SetData(&gridtypes.QuantumSafeFS{Cache: cache, Config: conf})
		var d gridtypes.Deployment
		u.json(&d, "deploy", "file", "--node", node, writeJSON(t, &gridtypes.Deployment{Workloads: []gridtypes.Workload{wl}}))
		got := d.Get(name)
		if got.Result.State != gridtypes.StateOk {
			t.Fatalf("qsfs %s: %+v", name, got.Result)
		}
		var r gridtypes.QuantumSafeFSResult
		if err := got.Result.Unmarshal(&r); err != nil || r.Path == "" || r.MetricsEndpoint == "" {
			t.Fatalf("qsfs result %+v: %v", got.Result, err)
		}
		return d, r
	}

	qd, res := deployQSFS("qs")
	big := make([]byte, 3*cache/2)
	rand.Read(big)
	files := map[string][]byte{"hello.txt": []byte("unbreakable\n"), "dir/sub/big.bin": big}
	for name, data := range files {
		p := filepath.Join(res.Path, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatalf("writing %s through the qsfs: %v", name, err)
		}
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(res.MetricsEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `qsfs_backend_up{kind="data",group="2",index="0"} 1`) {
		t.Errorf("metrics: got %d\n%s\nwant 200 with the backends up", resp.StatusCode, body)
	}

	// Cancel: flushed, unmounted, cache gone; deploy the same config again.
	u.mustRun("deployment", "cancel", strconv.FormatUint(qd.ContractID, 10))
	if _, err := os.Stat(filepath.Join(res.Path, "hello.txt")); err == nil {
		t.Errorf("%s still serves files after cancel", res.Path)
	}
	_, res2 := deployQSFS("qs2")
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(res2.Path, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s from the backends alone: got %d bytes, %v; want the %d written", name, len(got), err, len(data))
		}
	}
}
