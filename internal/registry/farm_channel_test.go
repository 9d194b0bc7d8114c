package registry

import (
	"context"
	"slices"
	"testing"
)

// TestFarmChannel: a farm's twin chooses the release channel of its
// nodes; nobody else can, and a bad name is refused. A node records the
// releases that failed on it.
func TestFarmChannel(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(t, "chan-farm", 0)
	other := g.user(t)

	if err := farmer.c.SetFarmChannel(ctx, farm.ID, "testing"); err != nil {
		t.Fatal(err)
	}
	f, err := other.c.Farm(ctx, farm.ID)
	if err != nil || f.Channel != "testing" {
		t.Fatalf("got channel %q, %v, want testing", f.Channel, err)
	}
	wantErr(t, "another twin", other.c.SetFarmChannel(ctx, farm.ID, "production"), ErrUnauthorized)
	wantErr(t, "bad name", farmer.c.SetFarmChannel(ctx, farm.ID, "../x"), ErrInvalid)
	wantErr(t, "no such farm", farmer.c.SetFarmChannel(ctx, farm.ID+100, "testing"), ErrNotFound)
	if f, _ = other.c.Farm(ctx, farm.ID); f.Channel != "testing" {
		t.Fatalf("after refusals: got channel %q, want testing", f.Channel)
	}

	reg := NodeRegistration{FarmID: farm.ID, Total: Resources{CRU: 4, MRU: 8 << 30}, Version: "v1.1.0", UpdateFailed: []string{"v1.2.0"}}
	n, err := nodeUser.c.RegisterNode(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if n.ID != node.ID || n.Version != "v1.1.0" || !slices.Equal(n.UpdateFailed, []string{"v1.2.0"}) {
		t.Fatalf("got node %+v, want v1.1.0 with v1.2.0 failed", n)
	}
	reg.UpdateFailed = make([]string, maxUpdateFailed+1)
	_, err = nodeUser.c.RegisterNode(ctx, reg)
	wantErr(t, "too many failed updates", err, ErrInvalid)
}
