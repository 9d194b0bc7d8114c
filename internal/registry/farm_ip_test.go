package registry

import (
	"context"
	"testing"
)

// TestFarmRemoveIP: the farmer removes a free public IP; an IP a contract
// holds, another twin's request, an unknown IP or farm and a bad address
// are refused and leave the farm as it was.
func TestFarmRemoveIP(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, _, node := g.farmWithNode(t, "ip-farm", 0)
	other := g.user(t)
	for _, ip := range []string{"185.9.1.2/24", "185.9.1.3/24"} {
		if err := farmer.c.AddFarmIP(ctx, farm.ID, ip, "185.9.1.1"); err != nil {
			t.Fatal(err)
		}
	}
	c, err := other.c.CreateNodeContract(ctx, node.ID, "ab", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.PublicIPs) != 1 || c.PublicIPs[0].IP != "185.9.1.2/24" {
		t.Fatalf("contract ips: got %+v, want 185.9.1.2/24", c.PublicIPs)
	}
	wantErr(t, "another twin", other.c.RemoveFarmIP(ctx, farm.ID, "185.9.1.3"), ErrUnauthorized)
	wantErr(t, "used by a contract", farmer.c.RemoveFarmIP(ctx, farm.ID, "185.9.1.2/24"), ErrInvalid)
	wantErr(t, "unknown ip", farmer.c.RemoveFarmIP(ctx, farm.ID, "185.9.1.9"), ErrNotFound)
	wantErr(t, "unknown farm", farmer.c.RemoveFarmIP(ctx, farm.ID+100, "185.9.1.3"), ErrNotFound)
	wantErr(t, "bad address", farmer.c.RemoveFarmIP(ctx, farm.ID, "not-an-ip"), ErrInvalid)
	f, err := farmer.c.Farm(ctx, farm.ID)
	if err != nil || len(f.PublicIPs) != 2 {
		t.Fatalf("after refusals: got %+v, %v, want both ips", f.PublicIPs, err)
	}

	if err := farmer.c.RemoveFarmIP(ctx, farm.ID, "185.9.1.3"); err != nil {
		t.Fatal(err)
	}
	f, err = farmer.c.Farm(ctx, farm.ID)
	if err != nil || len(f.PublicIPs) != 1 || f.PublicIPs[0].IP != "185.9.1.2/24" {
		t.Fatalf("after removal: got %+v, %v, want only 185.9.1.2/24", f.PublicIPs, err)
	}
	// Once the contract ends its address is free and may go.
	if err := other.c.CancelContract(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := farmer.c.RemoveFarmIP(ctx, farm.ID, "185.9.1.2"); err != nil {
		t.Fatalf("removing the freed ip: %v", err)
	}
	if f, _ = farmer.c.Farm(ctx, farm.ID); len(f.PublicIPs) != 0 {
		t.Fatalf("got %+v, want no ips", f.PublicIPs)
	}
}
