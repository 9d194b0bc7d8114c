package primitives

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/testutil"
)

// A workload that ran before (the engine replays it after a restart) whose
// volume, disk or namespace is gone (its pool failed or went missing) is
// not made again, empty, under the same name: Provision fails saying so
// and nothing is created. A new workload of the same kind is created.
func TestGoneIsNotRemade(t *testing.T) {
	st := startStorage(t, storage.HostedDisk{Type: storage.SSD, Size: 1 << 30}, storage.HostedDisk{Type: storage.HDD, Size: 1 << 30})
	log := testutil.Logger(t)
	zm, err := NewZDBManager(ZDBConfig{Port: 9900}, st, zdb.NewServer(zdb.ServerConfig{}, log), func() []string { return []string{"127.0.0.1"} }, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zm.Close() })
	tests := []struct {
		name   string
		mgr    provision.Manager
		typ    gridtypes.WorkloadType
		data   any
		exists func(id string) bool
	}{
		{"volume", &VolumeManager{Storage: st}, gridtypes.VolumeType, gridtypes.Volume{Size: 1 << 20},
			func(id string) bool { _, err := st.VolumeLookup(id); return err == nil }},
		{"disk", &ZMountManager{Storage: st}, gridtypes.ZMountType, gridtypes.ZMount{Size: 1 << 20},
			func(id string) bool { _, err := st.DiskLookup(id); return err == nil }},
		{"namespace", zm, gridtypes.ZDBType, gridtypes.ZDB{Size: 1 << 20, Mode: "user"},
			func(id string) bool { _, ok := zm.find(id); return ok }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran := workload(5, "ran-"+tt.name, tt.typ, tt.data)
			ran.Result.State = gridtypes.StateOk
			_, err := tt.mgr.Provision(context.Background(), ran)
			if err == nil || !strings.Contains(err.Error(), "is gone and is not made again empty") {
				t.Errorf("replaying a %s that ran before and is gone: got %v, want refused", tt.name, err)
			}
			if tt.exists(string(ran.ID)) {
				t.Errorf("a %s was made again for the workload that ran before", tt.name)
			}
			fresh := workload(5, "new-"+tt.name, tt.typ, tt.data)
			if _, err := tt.mgr.Provision(context.Background(), fresh); err != nil || !tt.exists(string(fresh.ID)) {
				t.Errorf("a new %s: got %v, want it made", tt.name, err)
			}
		})
	}
	var nf error = storage.ErrNotFound
	if !errors.Is(goneError("x", nf), storage.ErrNotFound) {
		t.Errorf("goneError does not wrap its cause")
	}
}
