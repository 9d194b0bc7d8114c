package release

import (
	"testing"
)

func TestRolloutAdmits(t *testing.T) {
	tests := []struct {
		name string
		r    *Rollout
		farm uint32
		want bool
	}{
		{"no rollout: everyone", nil, 5, true},
		{"test farm first", &Rollout{Farms: []uint32{5}}, 5, true},
		{"other farm waits", &Rollout{Farms: []uint32{5}}, 6, false},
		{"everyone at 100%", &Rollout{Farms: []uint32{5}, Percent: 100}, 6, true},
		{"paused stops even test farms", &Rollout{Farms: []uint32{5}, Percent: 100, Paused: true}, 5, false},
	}
	for _, tt := range tests {
		if got := tt.r.Admits(tt.farm, 42, "v2"); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	// A share: about that many nodes, and the nodes of a smaller share
	// stay in a larger one.
	small, large := &Rollout{Percent: 10}, &Rollout{Percent: 50}
	var n10, n50 int
	for node := uint32(1); node <= 2000; node++ {
		in10, in50 := small.Admits(9, node, "v2"), large.Admits(9, node, "v2")
		if in10 && !in50 {
			t.Fatalf("node %d is in the 10%% share but not in the 50%% one", node)
		}
		if in10 {
			n10++
		}
		if in50 {
			n50++
		}
	}
	if n10 < 140 || n10 > 260 || n50 < 900 || n50 > 1100 {
		t.Errorf("got %d and %d of 2000 nodes at 10%% and 50%%, want about 200 and 1000", n10, n50)
	}
}

// TestRolloutPublished: a rollout set, signed and published reaches the
// node client with its release; pausing is a new signed targets version.
func TestRolloutPublished(t *testing.T) {
	g := newGrid(t)
	r := newRepo(t, Config{})
	release(t, r, "testing", "v1")
	if err := r.SetRollout("testing", "v1", &Rollout{Farms: []uint32{3}, Percent: 20}); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); err == nil {
		t.Fatal("a changed rollout verifies before it is signed")
	}
	if _, _, err := r.Sign(); err != nil {
		t.Fatal(err)
	}
	g.publish(t, r)
	node := t.TempDir()
	c, err := g.client(t, r, node)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := c.Latest("testing")
	if err != nil {
		t.Fatal(err)
	}
	if rel.Rollout == nil || rel.Rollout.Percent != 20 || len(rel.Rollout.Farms) != 1 || rel.Rollout.Paused {
		t.Fatalf("got rollout %+v, want farms [3] and 20%%", rel.Rollout)
	}
	if err := r.SetRollout("testing", "v1", &Rollout{Farms: []uint32{3}, Percent: 20, Paused: true}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Sign(); err != nil {
		t.Fatal(err)
	}
	g.publish(t, r)
	if c, err = g.client(t, r, node); err != nil {
		t.Fatal(err)
	}
	if rel, _ = c.Latest("testing"); rel.Rollout == nil || !rel.Rollout.Paused {
		t.Fatalf("got rollout %+v, want paused", rel.Rollout)
	}
	if err := r.SetRollout("testing", "v9", nil); err == nil {
		t.Fatal("rollout of a missing release: got no error")
	}
	if err := r.SetRollout("testing", "v1", &Rollout{Percent: 101}); err == nil {
		t.Fatal("rollout of 101%: got no error")
	}
}
