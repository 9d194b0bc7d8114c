package e2e

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

// A tenant updates its 1 MiB namespace to 1 TiB on a node with a 3 GiB HDD
// (issue 15, finding 1). The node refuses the update naming the workload;
// the deployment stays as it was (version, state, size) and keeps serving;
// another tenant still gets a namespace of most of the HDD.
func TestUpdateBeyondCapacity(t *testing.T) {
	g, n, u := setup(t)
	node := strconv.Itoa(int(n.id))
	var d gridtypes.Deployment
	u.json(&d, "deploy", "zdb", "--node", node, "--size", "1M", "--password", "pw", "--name", "db")
	contract := strconv.FormatUint(d.ContractID, 10)

	want := d
	want.Workloads = append([]gridtypes.Workload(nil), d.Workloads...)
	want.Workloads[0].SetData(&gridtypes.ZDB{Size: gridtypes.Terabyte, Mode: "user", Password: "pw"})
	out, errs, code := u.run("deployment", "update", "-f", writeJSON(t, want), contract)
	if code == 0 || !strings.Contains(errs+out, `workload "db" cannot grow`) || !strings.Contains(errs+out, "not enough capacity: HDD needs") {
		t.Fatalf("update to 1 TiB: exit %d\n%s%s", code, out, errs)
	}

	var got gridtypes.Deployment
	u.json(&got, "deployment", "get", contract)
	var z gridtypes.ZDB
	if err := json.Unmarshal(got.Get("db").Data, &z); err != nil {
		t.Fatal(err)
	}
	if got.Version != 0 || got.Get("db").Result.State != gridtypes.StateOk || z.Size != gridtypes.Megabyte {
		t.Fatalf("after the refused update: version %d, %s, size %d; want version 0, ok, 1 MiB", got.Version, got.Get("db").Result.State, z.Size)
	}
	r := zdbResult(t, &got, "db")
	if out := redis(t, n.zdbPort, "SELECT "+r.Namespace+" pw\nSET k v\nGET k\n"); !strings.Contains(out, "v") {
		t.Fatalf("the namespace after the refused update: %q", out)
	}

	other := newUser(t, g)
	var d2 gridtypes.Deployment
	other.json(&d2, "deploy", "zdb", "--node", node, "--size", "2G", "--name", "db")
	if st := d2.Get("db").Result.State; st != gridtypes.StateOk {
		t.Fatalf("another tenant's 2 GiB namespace: %s %q", st, d2.Get("db").Result.Error)
	}
	n.stop()
	checkClean(t, n.data)
}
