package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/nodeapi"
)

// noEngine is an Engine that provisions nothing.
type noEngine struct{}

func (noEngine) Provision(*gridtypes.Deployment) error              { return errors.New("not here") }
func (noEngine) Update(*gridtypes.Deployment, []gridtypes.Op) error { return errors.New("not here") }
func (noEngine) Supports(gridtypes.WorkloadType) bool               { return true }
func (noEngine) Used() (gridtypes.Capacity, error)                  { return gridtypes.Capacity{}, nil }

var _ Deployments = (*provision.Store)(nil)

// dirLogs keeps the console log of each workload in dir/<workload id>.
type dirLogs struct{ dir string }

func (l dirLogs) ConsoleLog(wl gridtypes.WorkloadID) (string, error) {
	p := filepath.Join(l.dir, string(wl))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no console log for %s", wl)
	}
	return p, nil
}

func newLogsAPI(t *testing.T) (*API, string) {
	t.Helper()
	st, err := provision.OpenStore(filepath.Join(t.TempDir(), "workloads.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	vm := `{"flist":"f","network":{"interfaces":[{"network":"n","ip":"10.0.0.2"}]},"compute_capacity":{"cpu":1,"memory":268435456}}`
	d := &gridtypes.Deployment{TwinID: 7, ContractID: 12, Workloads: []gridtypes.Workload{
		{Name: "vm", Type: gridtypes.ZMachineType, Data: json.RawMessage(vm)},
		{Name: "disk", Type: gridtypes.ZMountType, Data: json.RawMessage(`{"size":1048576}`)},
	}}
	if err := st.Create(d, provision.Job{Kind: "provision", Twin: 7, Contract: 12}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, string(gridtypes.NewWorkloadID(7, 12, "vm"))), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	return New(1, nil, noEngine{}, st, nil, WithConsoleLogs(dirLogs{dir})), dir
}

func TestZMachineLogs(t *testing.T) {
	a, _ := newLogsAPI(t)
	tests := []struct {
		name     string
		src      uint32
		req      string
		want     string // data, or the error's substring
		next     int64
		rotated  bool
		notFound bool
		fails    bool
	}{
		{name: "from start", src: 7, req: `{"contract_id":12,"name":"vm","offset":0,"max":4}`, want: "0123", next: 4},
		{name: "tail", src: 7, req: `{"contract_id":12,"name":"vm","offset":-1,"max":3}`, want: "789", next: 10},
		{name: "rotated", src: 7, req: `{"contract_id":12,"name":"vm","offset":50,"max":2}`, want: "01", next: 2, rotated: true},
		{name: "max bounded", src: 7, req: `{"contract_id":12,"name":"vm","offset":0,"max":99999999999}`, want: "0123456789", next: 10},
		{name: "other twin", src: 8, req: `{"contract_id":12,"name":"vm"}`, want: "deployment 12: not found", notFound: true, fails: true},
		{name: "unknown contract", src: 7, req: `{"contract_id":13,"name":"vm"}`, want: "deployment 13: not found", notFound: true, fails: true},
		{name: "unknown workload", src: 7, req: `{"contract_id":12,"name":"vm2"}`, want: `workload "vm2" of deployment 12: not found`, notFound: true, fails: true},
		{name: "not a zmachine", src: 7, req: `{"contract_id":12,"name":"disk"}`, want: "is a zmount, not a zmachine", fails: true},
		{name: "no name", src: 7, req: `{"contract_id":12}`, want: "name is required", fails: true},
		{name: "bad payload", src: 7, req: `[`, want: "decoding request", fails: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.zmachineLogs(context.Background(), tt.src, []byte(tt.req))
			if tt.fails {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got error %v, want one containing %q", err, tt.want)
				}
				if errors.Is(err, ErrNotFound) != tt.notFound {
					t.Fatalf("errors.Is(%v, ErrNotFound) = %t, want %t", err, !tt.notFound, tt.notFound)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// What the relay carries: JSON, data as base64.
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var r nodeapi.LogsResponse
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if string(r.Data) != tt.want || r.Next != tt.next || r.Rotated != tt.rotated || r.Size != 10 {
				t.Errorf("got %q next %d rotated %t size %d, want %q next %d rotated %t size 10", r.Data, r.Next, r.Rotated, r.Size, tt.want, tt.next, tt.rotated)
			}
		})
	}
}

// nodeWithLogs is a Node (nil methods never called) that also keeps logs.
type nodeWithLogs struct {
	Node
	dirLogs
}

func TestZMachineLogsSource(t *testing.T) {
	a, dir := newLogsAPI(t)
	req := []byte(`{"contract_id":12,"name":"vm","offset":0,"max":4}`)
	// Without the option nor a node keeping logs: a clear error.
	bare := New(1, nil, a.engine, a.store, nil)
	if _, err := bare.zmachineLogs(context.Background(), 7, req); !errors.Is(err, ErrNoConsoleLogs) {
		t.Fatalf("without console logs: got %v, want ErrNoConsoleLogs", err)
	}
	// A node that implements ConsoleLogs is used.
	viaNode := New(1, nil, a.engine, a.store, nodeWithLogs{dirLogs: dirLogs{dir}})
	if got, err := viaNode.zmachineLogs(context.Background(), 7, req); err != nil || string(got.(nodeapi.LogsResponse).Data) != "0123" {
		t.Fatalf("via node: got %v, %v", got, err)
	}
	// The machine has no log file yet.
	os.Remove(filepath.Join(dir, string(gridtypes.NewWorkloadID(7, 12, "vm"))))
	if _, err := a.zmachineLogs(context.Background(), 7, req); err == nil || !strings.Contains(err.Error(), "no console log") {
		t.Fatalf("missing log: got %v", err)
	}
}
