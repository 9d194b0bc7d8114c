package node

import (
	"errors"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/metrics"
	"github.com/zos-go/zos/internal/node/provision"
)

// TestNodeMetricsEvents: what the engine and the VM monitor report lands
// in the right series (the e2e test scrapes the rest from a running node).
func TestNodeMetricsEvents(t *testing.T) {
	m := newNodeMetrics()
	m.observeProvision(gridtypes.ZMachineType, "provision", 3*time.Second, nil)
	m.observeProvision(gridtypes.ZMachineType, "provision", time.Second, errors.New("no kernel"))
	m.observeProvision(gridtypes.ZDBType, "deprovision", time.Millisecond, nil)
	m.vmEvent(nil)
	m.vmEvent(nil)
	m.vmEvent(errors.New("decommissioned"))
	var off *nodeMetrics
	off.vmEvent(nil) // a node without metrics counts nothing and does not fail

	got, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	fams := metrics.Families{}
	for _, f := range got {
		fams[f.GetName()] = f
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"zos_node_provision_duration_seconds", []string{"type", "zmachine", "op", "provision", "result", "ok"}, 1},
		{"zos_node_provision_duration_seconds", []string{"type", "zmachine", "op", "provision", "result", "error"}, 1},
		{"zos_node_provision_duration_seconds", []string{"type", "zdb", "op", "deprovision", "result", "ok"}, 1},
		{"zos_node_vm_restarts_total", nil, 2},
		{"zos_node_vm_failures_total", nil, 1},
	} {
		if v, ok := fams.Value(tt.name, tt.labels...); !ok || v != tt.want {
			t.Errorf("%s%v: got %v (present %v), want %v", tt.name, tt.labels, v, ok, tt.want)
		}
	}
	if got := m.engineConfig(provisionConfig()).Observe; got == nil {
		t.Error("engine config without the metrics' Observe hook")
	}
	if got := off.engineConfig(provisionConfig()).Observe; got != nil {
		t.Error("engine config of a node without metrics has an Observe hook")
	}
}

func provisionConfig() provision.Config { return provision.Config{Workers: 1} }
