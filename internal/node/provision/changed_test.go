package provision

import (
	"path/filepath"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestChangedClosesOnCommit: the channel of Changed is closed by the next
// committed change of its deployment (creation, result, update, removal),
// not by a change of another deployment nor by a refused write.
func TestChangedClosesOnCommit(t *testing.T) {
	st, err := OpenStore(filepath.Join(t.TempDir(), "store.bolt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	d := mkdep(1, `db:zdb:{"size":1,"mode":"user"}`)
	other := mkdep(2, `db2:zdb:{"size":1,"mode":"user"}`)
	grow := func(string, gridtypes.Capacity, gridtypes.Capacity) error { return nil }

	steps := []struct {
		name   string
		change func() error
		mine   bool // a change of deployment 1
	}{
		{"create", func() error { return st.Create(d, Job{Kind: JobProvision, Twin: 1, Contract: 1}) }, true},
		{"create of another deployment", func() error { return st.Create(other, Job{Kind: JobProvision, Twin: 1, Contract: 2}) }, false},
		{"refused create", func() error { return st.Create(mkdep(1, `x:zdb:{}`), Job{}) }, false},
		{"result", func() error {
			wl := d.Workloads[0]
			wl.Result = gridtypes.Result{State: gridtypes.StateOk}
			return st.SetResult(1, 1, wl)
		}, true},
		{"result of another deployment", func() error {
			wl := other.Workloads[0]
			wl.Result = gridtypes.Result{State: gridtypes.StateOk}
			return st.SetResult(1, 2, wl)
		}, false},
		{"update", func() error {
			up := mkdep(1, `db:zdb:{"size":2,"mode":"user"}`)
			up.Version, up.Workloads[0].Version = 1, 1
			return st.Update(up, Job{Kind: JobUpdate, Twin: 1, Contract: 1}, grow)
		}, true},
		{"delete", func() error { return st.Delete(1, 1) }, true},
	}
	for _, s := range steps {
		ch := st.Changed(1, 1)
		err := s.change()
		if s.name == "refused create" {
			if err == nil {
				t.Fatalf("%s: got no error, want one", s.name)
			}
		} else if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := closed(ch); got != s.mine {
			t.Errorf("%s: channel closed %v, want %v", s.name, got, s.mine)
		}
		if s.mine && closed(st.Changed(1, 1)) {
			t.Errorf("%s: a channel taken after the change is closed already", s.name)
		}
	}
}
