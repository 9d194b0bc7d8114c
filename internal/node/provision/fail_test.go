package provision

import (
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

// Fail marks one workload failed with the reason, leaves the others and
// removes nothing (its manager is not asked to deprovision); a restart does
// not rebuild it.
func TestFailKeepsReasonAcrossRestart(t *testing.T) {
	f := newFixture(t)
	d := mkdep(8, `disk:zmount:{"size":1}`, `db:zdb:{"size":1,"mode":"user"}`)
	if err := f.eng.Provision(d); err != nil {
		t.Fatal(err)
	}
	f.wait(1, 8)
	f.lines = nil
	reason := "pool n1-zos-abc failed: disk file /data/disk1.img is gone"
	if err := f.eng.Fail(gridtypes.NewWorkloadID(1, 8, "db"), reason); err != nil {
		t.Fatal(err)
	}
	got := f.wait(1, 8)
	if s := states(got); s != "disk=ok db=error" {
		t.Fatalf("states after Fail: got %s, want disk=ok db=error", s)
	}
	if msg := got.Get("db").Result.Error; msg != reason {
		t.Fatalf("reason: got %q, want %q", msg, reason)
	}
	if len(f.lines) != 0 {
		t.Errorf("managers called by Fail: %v, want none", f.lines)
	}
	f.stop()
	f.start()
	got = f.wait(1, 8)
	if s := states(got); s != "disk=ok db=error" || got.Get("db").Result.Error != reason {
		t.Fatalf("after a restart: got %s %q, want db still failed with the reason", s, got.Get("db").Result.Error)
	}
	if err := f.eng.Fail(gridtypes.NewWorkloadID(1, 99, "db"), "x"); err == nil {
		t.Fatal("failing a workload of an unknown deployment succeeded")
	}
}
