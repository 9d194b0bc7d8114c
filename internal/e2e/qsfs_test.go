package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/testutil"
)

// TestQSFS: a user deploys four 0-db namespaces (three data backends in
// three groups, one meta) as zdb workloads, then a qsfs over them with
// zosctl deploy qsfs; files written through the qsfs path on the node (one
// larger than its cache) are flushed to the backends when the qsfs is
// canceled, and the same config (same keys) deployed again with a fresh
// cache gives every file back identical. A node crash in between: the
// restarted node mounts the qsfs again with every file. The metrics
// endpoint answers and zosctl qsfs status shows every backend up.
func TestQSFS(t *testing.T) {
	_, n, u := setup(t)
	node := strconv.Itoa(int(n.id))

	var zd gridtypes.Deployment
	names := []string{"d1", "d2", "d3", "meta1"}
	var zwls []gridtypes.Workload
	for _, name := range names {
		wl := gridtypes.Workload{Name: name, Type: gridtypes.ZDBType}
		wl.SetData(&gridtypes.ZDB{Size: 256 * gridtypes.Megabyte, Mode: "user", Password: "pw-" + name})
		zwls = append(zwls, wl)
	}
	u.json(&zd, "deploy", "file", "--node", node, writeJSON(t, &gridtypes.Deployment{Workloads: zwls}))
	const cache = 8 * gridtypes.Megabyte
	result := func(d gridtypes.Deployment, name string) gridtypes.QuantumSafeFSResult {
		t.Helper()
		got := d.Get(name)
		if got == nil || got.Result.State != gridtypes.StateOk {
			t.Fatalf("qsfs %s: %+v", name, got)
		}
		var r gridtypes.QuantumSafeFSResult
		if err := got.Result.Unmarshal(&r); err != nil || r.Path == "" || r.MetricsEndpoint == "" {
			t.Fatalf("qsfs result %+v: %v", got.Result, err)
		}
		return r
	}

	// zosctl deploy qsfs: the zdbs named meta* hold the metadata, the
	// others are a group each; 2 of 3 shards.
	var qd gridtypes.Deployment
	u.json(&qd, "deploy", "qsfs", "--node", node, "--zdbs", strconv.FormatUint(zd.ContractID, 10), "--cache", "8M")
	res := result(qd, "qs")
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

	status := u.mustRun("qsfs", "status", strconv.FormatUint(qd.ContractID, 10))
	if !strings.Contains(status, "backends up 4 of 4") || !strings.Contains(status, "path "+res.Path) {
		t.Errorf("zosctl qsfs status:\n%s\nwant the path and 4 of 4 backends up", status)
	}

	// A node crash leaves the FUSE mount dead; the restarted node detaches
	// it and mounts the qsfs again at the same path, from its cache and
	// the backends.
	n.crash()
	if _, err := os.ReadFile(filepath.Join(res.Path, "hello.txt")); err == nil {
		t.Fatal("the qsfs still serves with its node killed; the test wants a dead mount")
	}
	n.start()
	n.waitRegistered(u)
	testutil.Eventually(t, 60*time.Second, "qsfs mounted again", func() (bool, error) {
		got, err := os.ReadFile(filepath.Join(res.Path, "hello.txt"))
		return err == nil && bytes.Equal(got, files["hello.txt"]), err
	})
	for name, data := range files {
		if got, err := os.ReadFile(filepath.Join(res.Path, name)); err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s after the node crashed: got %d bytes, %v; want the %d written", name, len(got), err, len(data))
		}
	}

	// Cancel: flushed, unmounted, cache gone; deploy the same config (the
	// same keys) again.
	u.mustRun("deployment", "cancel", strconv.FormatUint(qd.ContractID, 10))
	if _, err := os.Stat(filepath.Join(res.Path, "hello.txt")); err == nil {
		t.Errorf("%s still serves files after cancel", res.Path)
	}
	again := gridtypes.Workload{Name: "qs2", Type: gridtypes.QuantumSafeFSType, Data: qd.Get("qs").Data}
	var qd2 gridtypes.Deployment
	u.json(&qd2, "deploy", "file", "--node", node, writeJSON(t, &gridtypes.Deployment{Workloads: []gridtypes.Workload{again}}))
	res2 := result(qd2, "qs2")
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(res2.Path, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s from the backends alone: got %d bytes, %v; want the %d written", name, len(got), err, len(data))
		}
	}
}
