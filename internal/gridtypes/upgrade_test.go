package gridtypes

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestUpgrade(t *testing.T) {
	old := func() *Deployment {
		return &Deployment{TwinID: 1, ContractID: 2, Version: 1, SignatureRequirement: twinReq(), Workloads: []Workload{
			{Version: 0, Name: "disk", Type: ZMountType, Data: json.RawMessage(`{"size":10}`)},
			{Version: 1, Name: "db", Type: ZDBType, Data: json.RawMessage(`{"size":10,"mode":"user"}`)},
			{Version: 0, Name: "vm", Type: ZMachineType, Data: json.RawMessage(vmOK)},
			{Version: 0, Name: "ip", Type: PublicIPType, Data: json.RawMessage(`{"v4":true}`)},
		}}
	}
	next := func(f func(d *Deployment)) *Deployment {
		d := old()
		d.Version = 2
		f(d)
		return d
	}
	ops := func(o []Op) string {
		var s []string
		for _, op := range o {
			s = append(s, fmt.Sprintf("%s %s", op.Kind, op.Workload.Name))
		}
		return strings.Join(s, ", ")
	}
	for _, tt := range []struct {
		name    string
		new     *Deployment
		want    string
		wantErr string
	}{
		{name: "no change", new: next(func(*Deployment) {}), want: ""},
		{name: "grow disk", new: next(func(d *Deployment) { d.Workloads[0].Version = 2; d.Workloads[0].Data = json.RawMessage(`{"size":20}`) }), want: "update disk"},
		{name: "add volume", new: next(func(d *Deployment) {
			d.Workloads = append(d.Workloads, Workload{Version: 2, Name: "vol", Type: VolumeType, Data: json.RawMessage(`{"size":1}`)})
		}), want: "add vol"},
		{name: "remove two", new: next(func(d *Deployment) { d.Workloads = d.Workloads[:2] }), want: "remove ip, remove vm"},
		{name: "remove, update and add", new: next(func(d *Deployment) {
			d.Workloads = []Workload{d.Workloads[1], {Version: 2, Name: "x", Type: ZMountType, Data: json.RawMessage(`{"size":1}`)}}
			d.Workloads[0].Version = 2
			d.Workloads[0].Data = json.RawMessage(`{"size":10,"mode":"user","password":"p"}`)
		}), want: "remove ip, remove vm, remove disk, update db, add x"},
		{name: "skip a version", new: func() *Deployment { d := next(func(*Deployment) {}); d.Version = 3; return d }(), wantErr: "version must be 2"},
		{name: "same version", new: func() *Deployment { d := old(); return d }(), wantErr: "version must be 2"},
		{name: "other twin", new: next(func(d *Deployment) { d.TwinID = 5; d.SignatureRequirement.Requests[0].TwinID = 5 }), wantErr: "cannot change the twin"},
		{name: "other contract", new: next(func(d *Deployment) { d.ContractID = 9 }), wantErr: "cannot change the contract"},
		{name: "type change", new: next(func(d *Deployment) { d.Workloads[0].Version = 2; d.Workloads[0].Type = VolumeType }), wantErr: "cannot change type"},
		{name: "vm not updatable", new: next(func(d *Deployment) { d.Workloads[2].Version = 2 }), wantErr: "a zmachine cannot be updated"},
		{name: "ip not updatable", new: next(func(d *Deployment) { d.Workloads[3].Version = 2 }), wantErr: "a ip cannot be updated"},
		{name: "new workload with old version", new: next(func(d *Deployment) {
			d.Workloads = append(d.Workloads, Workload{Version: 1, Name: "vol", Type: VolumeType, Data: json.RawMessage(`{"size":1}`)})
		}), wantErr: "a new workload must have version 2"},
		{name: "changed without bump", new: next(func(d *Deployment) { d.Workloads[0].Data = json.RawMessage(`{"size":20}`) }), wantErr: "changed without raising its version"},
		{name: "version mismatch", new: next(func(d *Deployment) { d.Workloads[1].Version = 0 }), wantErr: "does not match the current 1"},
		{name: "invalid new", new: next(func(d *Deployment) { d.Workloads[0].Version = 2; d.Workloads[0].Data = json.RawMessage(`{"size":0}`) }), wantErr: "size: must be greater than 0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Upgrade(old(), tt.new)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v (ops %q), want error containing %q", err, ops(got), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ops(got) != tt.want {
				t.Fatalf("got ops %q, want %q", ops(got), tt.want)
			}
		})
	}
}
