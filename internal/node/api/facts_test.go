package api

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/facts"
	"github.com/zos-go/zos/internal/nodeapi"
)

func vm(name string, typ gridtypes.WorkloadType, state gridtypes.ResultState, ifaces string) gridtypes.Workload {
	return gridtypes.Workload{Name: name, Type: typ, Result: gridtypes.Result{State: state},
		Data: json.RawMessage(`{"flist":"f","network":{"interfaces":` + ifaces + `},"compute_capacity":{"cpu":1,"memory":268435456}}`)}
}

// TestPrivateIPs: as the original, every machine (full or light) not
// deleted nor in error counts, in deployment order; other networks and
// other workload types do not.
func TestPrivateIPs(t *testing.T) {
	ds := []*gridtypes.Deployment{
		{ContractID: 1, Workloads: []gridtypes.Workload{
			vm("ok", gridtypes.ZMachineType, gridtypes.StateOk, `[{"network":"net","ip":"10.1.2.2"}]`),
			vm("init", gridtypes.ZMachineType, gridtypes.StateInit, `[{"network":"net","ip":"10.1.2.3"}]`),
			vm("paused", gridtypes.ZMachineType, gridtypes.StatePaused, `[{"network":"net","ip":"10.1.2.4"},{"network":"other","ip":"10.9.0.2"}]`),
			vm("deleted", gridtypes.ZMachineType, gridtypes.StateDeleted, `[{"network":"net","ip":"10.1.2.5"}]`),
			vm("error", gridtypes.ZMachineType, gridtypes.StateError, `[{"network":"net","ip":"10.1.2.6"}]`),
			{Name: "disk", Type: gridtypes.ZMountType, Data: json.RawMessage(`{"size":10}`), Result: gridtypes.Result{State: gridtypes.StateOk}},
		}},
		{ContractID: 2, Workloads: []gridtypes.Workload{
			vm("light", gridtypes.ZMachineLightType, gridtypes.StateOk, `[{"network":"net","ip":"10.1.3.2"}]`),
		}},
	}
	for _, tt := range []struct {
		network string
		want    []string
	}{
		{"net", []string{"10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.3.2"}},
		{"other", []string{"10.9.0.2"}},
		{"none", []string{}},
	} {
		got, err := PrivateIPs(ds, tt.network)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("network %s: got %v, want %v", tt.network, got, tt.want)
		}
	}
	bad := []*gridtypes.Deployment{{ContractID: 3, Workloads: []gridtypes.Workload{
		{Name: "vm", Type: gridtypes.ZMachineType, Data: json.RawMessage(`{`), Result: gridtypes.Result{State: gridtypes.StateOk}}}}}
	if _, err := PrivateIPs(bad, "net"); err == nil {
		t.Fatal("got no error for a machine whose data does not decode, want one")
	}
}

// factsNode is a node whose facts come from a facts.Reader over a tree.
type factsNode struct {
	Node
	r        facts.Reader
	features []string
}

func (n factsNode) DMI() (nodeapi.DMI, error) { return n.r.DMI() }
func (n factsNode) Hypervisor() string        { return n.r.Hypervisor().Name }
func (n factsNode) Features() []string        { return n.features }

// TestFactsCommands: zos.system.dmi, .hypervisor and .node_features_get
// answer the node's facts in the original's shapes; a node without facts
// answers a clear error.
func TestFactsCommands(t *testing.T) {
	root := t.TempDir()
	for p, c := range map[string]string{
		"sys/class/dmi/id/sys_vendor":   "QEMU",
		"sys/class/dmi/id/product_name": "Standard PC (Q35 + ICH9, 2009)",
		"proc/cpuinfo":                  "flags\t: fpu hypervisor\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	a := New(1, nil, nil, nil, factsNode{r: facts.Reader{Root: root}, features: []string{"zmachine", "wireguard"}})
	ctx := context.Background()
	call := func(h func(context.Context, uint32, []byte) (any, error)) string {
		t.Helper()
		v, err := h(ctx, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := call(a.hypervisor), `"qemu"`; got != want {
		t.Errorf("hypervisor: got %s, want %s", got, want)
	}
	if got, want := call(a.nodeFeatures), `["zmachine","wireguard"]`; got != want {
		t.Errorf("features: got %s, want %s", got, want)
	}
	var d struct {
		Tooling struct {
			Aggregator string `json:"aggregator"`
		} `json:"tooling"`
		Sections []struct {
			TypeNum     int `json:"typenum"`
			SubSections []struct {
				Properties map[string]struct {
					Value string `json:"value"`
				} `json:"properties"`
			} `json:"subsections"`
		} `json:"sections"`
	}
	if err := json.Unmarshal([]byte(call(a.dmi)), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Sections) != 1 || d.Sections[0].TypeNum != 1 || d.Sections[0].SubSections[0].Properties["Manufacturer"].Value != "QEMU" {
		t.Errorf("dmi: got %+v, want one System section with Manufacturer QEMU", d)
	}

	bare := New(1, nil, nil, nil, factsNode{r: facts.Reader{Root: t.TempDir()}})
	if _, err := bare.dmi(ctx, 7, nil); !errors.Is(err, facts.ErrNoDMI) {
		t.Errorf("dmi without facts: got %v, want ErrNoDMI", err)
	}
	if got, want := func() string { v, _ := bare.hypervisor(ctx, 7, nil); return v.(string) }(), ""; got != want {
		t.Errorf("bare metal hypervisor: got %q, want %q", got, want)
	}
	if got, want := func() string { v, _ := bare.nodeFeatures(ctx, 7, nil); b, _ := json.Marshal(v); return string(b) }(), "[]"; got != want {
		t.Errorf("no features: got %s, want %s", got, want)
	}
	var plain struct{ Node }
	if _, err := New(1, nil, nil, nil, plain).dmi(ctx, 7, nil); !errors.Is(err, ErrNoFacts) {
		t.Errorf("node without facts: got %v, want ErrNoFacts", err)
	}
}
