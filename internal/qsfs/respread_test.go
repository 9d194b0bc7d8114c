package qsfs

import (
	"context"
	"testing"
)

// TestRepairSpreadsAgainAfterOutage: a group down during a Repair gets its
// shards rebuilt on the other groups, too concentrated to survive a
// group's loss (Degraded); once the group is back, the next Repair moves
// shards back onto it, so that the loss of another whole group then loses
// nothing, and a Repair after that has nothing to do.
func TestRepairSpreadsAgainAfterOutage(t *testing.T) {
	c := newCluster(t, 3, 2, 3)
	s := c.open(t)
	ctx := context.Background()
	objs := map[string][]byte{"obj": random(t, 3*(64<<10)+100), "small": []byte("small")}
	for n, d := range objs {
		mustPut(t, s, n, d)
	}

	c.groups[1][0].Stop()
	c.groups[1][1].Stop()
	rep, err := s.Repair(ctx)
	if err != nil {
		t.Fatalf("Repair with group 1 down: %v", err)
	}
	if rep.ShardsMissing == 0 || rep.Degraded == 0 {
		t.Errorf("Repair with group 1 down: got %+v, want missing shards rewritten, degraded chunks", rep)
	}
	c.groups[1][0].Restart()
	c.groups[1][1].Restart()
	rep, err = s.Repair(ctx)
	if err != nil {
		t.Fatalf("Repair with group 1 back: %v", err)
	}
	if rep.Respread == 0 || rep.ShardsRewritten == 0 || rep.Degraded != 0 || rep.ShardsMissing+rep.ShardsCorrupt != 0 {
		t.Errorf("Repair with group 1 back: got %+v, want chunks spread again, none degraded", rep)
	}
	rep, err = s.Repair(ctx)
	if err != nil || rep.ShardsRewritten != 0 || rep.Respread != 0 || rep.Degraded != 0 {
		t.Errorf("a third Repair: got %+v, %v; want nothing to do", rep, err)
	}

	// Group 0, which held half the shards during the outage, lost.
	c.groups[0][0].Stop()
	c.groups[0][1].Stop()
	for n, d := range objs {
		mustRead(t, s, n, d)
	}
}
