package node

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/node/storage"
)

// Which workloads of a deployment a failed pool takes down.
func TestAffected(t *testing.T) {
	d := &gridtypes.Deployment{TwinID: 3, ContractID: 9}
	add := func(name string, typ gridtypes.WorkloadType, state gridtypes.ResultState, data any) {
		b, _ := json.Marshal(data)
		d.Workloads = append(d.Workloads, gridtypes.Workload{Name: name, Type: typ, Data: b, Result: gridtypes.Result{State: state}})
	}
	add("vol", gridtypes.VolumeType, gridtypes.StateOk, gridtypes.Volume{Size: 1})
	add("disk", gridtypes.ZMountType, gridtypes.StateOk, gridtypes.ZMount{Size: 1})
	add("db", gridtypes.ZDBType, gridtypes.StateOk, gridtypes.ZDB{Size: 1})
	add("db2", gridtypes.ZDBType, gridtypes.StateOk, gridtypes.ZDB{Size: 1})
	add("vm", gridtypes.ZMachineType, gridtypes.StateOk, gridtypes.ZMachine{Mounts: []gridtypes.MachineMount{{Name: "disk"}}})
	add("vm2", gridtypes.ZMachineType, gridtypes.StateOk, gridtypes.ZMachine{})
	add("oldvol", gridtypes.VolumeType, gridtypes.StateError, gridtypes.Volume{Size: 1})
	id := func(n string) string { return string(d.WorkloadID(n)) }
	tests := []struct {
		name string
		on   storage.On
		zdb  map[string]bool
		want string
	}{
		{"nothing there", storage.On{}, nil, "[]"},
		{"a volume", storage.On{Volumes: []string{id("vol"), id("oldvol")}}, nil, "[vol]"},
		{"a disk and the VM mounting it", storage.On{VDisks: []string{id("disk")}}, nil, "[disk vm]"},
		{"a VM's root volume", storage.On{Volumes: []string{primitives.RootfsVolume(d.WorkloadID("vm2"))}}, nil, "[vm2]"},
		{"one namespace on the device", storage.On{Device: true}, map[string]bool{id("db2"): true}, "[db2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fmt.Sprint(affected(d, tt.on, func(ns string) bool { return tt.zdb[ns] }))
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}
