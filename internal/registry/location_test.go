package registry

import (
	"context"
	"math"
	"strings"
	"testing"
)

func TestParseLocation(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Location
		err  bool
	}{
		{"", Location{}, false},
		{"Belgium", Location{Country: "Belgium"}, false},
		{" Belgium , Ghent ", Location{Country: "Belgium", City: "Ghent"}, false},
		{"Egypt,Cairo,extra", Location{Country: "Egypt", City: "Cairo,extra"}, false},
		{",Ghent", Location{}, true},
		{strings.Repeat("x", 65), Location{}, true},
		{"Bel\x00gium", Location{}, true},
		{"Belgium,Gh\nent", Location{}, true},
	} {
		got, err := ParseLocation(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseLocation(%q): got %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	for _, l := range []Location{{Country: "X", Latitude: 91}, {Country: "X", Longitude: -181}, {Country: "X", Latitude: math.NaN()}, {City: "Ghent"}} {
		if err := l.Check(); err == nil {
			t.Errorf("Check(%+v): got nil, want an error", l)
		}
	}
}

// TestNodeLocation: the node reports its location; the farmer's location
// wins over the node's next registrations until the farmer clears it;
// another farmer and bad locations are refused without a change.
func TestNodeLocation(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(t, "loc", 0)
	get := func() Node {
		t.Helper()
		n, err := farmer.c.Node(ctx, node.ID)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	register := func(l Location) error {
		_, err := nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, Total: Resources{CRU: 4, MRU: 8 << 30}, Location: l})
		return err
	}

	if err := register(Location{Country: "Belgium", City: "Ghent"}); err != nil {
		t.Fatal(err)
	}
	if got, want := get().Location, (Location{Country: "Belgium", City: "Ghent"}); got != want {
		t.Fatalf("node's own location: got %+v, want %+v", got, want)
	}
	wantErr(t, "node registers a bad location", register(Location{Country: strings.Repeat("x", 100)}), ErrInvalid)

	farmerLoc := Location{Country: "Egypt", City: "Cairo", Latitude: 30.04, Longitude: 31.24}
	if err := farmer.c.SetLocation(ctx, node.ID, &farmerLoc); err != nil {
		t.Fatal(err)
	}
	if err := register(Location{Country: "Belgium"}); err != nil {
		t.Fatal(err)
	}
	if n := get(); n.Location != farmerLoc || !n.LocationByFarmer {
		t.Fatalf("after the node registers again: got %+v (by farmer %v), want the farmer's %+v", n.Location, n.LocationByFarmer, farmerLoc)
	}

	// Another farmer, a node, bad input: refused, nothing changed.
	other, _, _, _ := g.farmWithNode(t, "other", 0)
	wantErr(t, "another farmer", other.c.SetLocation(ctx, node.ID, &Location{Country: "France"}), ErrUnauthorized)
	wantErr(t, "the node itself", nodeUser.c.SetLocation(ctx, node.ID, &Location{Country: "France"}), ErrUnauthorized)
	wantErr(t, "city without country", farmer.c.SetLocation(ctx, node.ID, &Location{City: "Paris"}), ErrInvalid)
	wantErr(t, "latitude out of range", farmer.c.SetLocation(ctx, node.ID, &Location{Country: "France", Latitude: 100}), ErrInvalid)
	wantErr(t, "unknown node", farmer.c.SetLocation(ctx, 9999, &Location{Country: "France"}), ErrNotFound)
	if got := get().Location; got != farmerLoc {
		t.Fatalf("after refused writes: got %+v, want %+v unchanged", got, farmerLoc)
	}

	// Cleared: the node's own location counts again from its next
	// registration.
	if err := farmer.c.SetLocation(ctx, node.ID, nil); err != nil {
		t.Fatal(err)
	}
	if n := get(); n.Location != (Location{}) || n.LocationByFarmer {
		t.Fatalf("after clearing: got %+v (by farmer %v), want none", n.Location, n.LocationByFarmer)
	}
	if err := register(Location{Country: "Belgium"}); err != nil {
		t.Fatal(err)
	}
	if got, want := get().Location, (Location{Country: "Belgium"}); got != want {
		t.Fatalf("after clearing and registering: got %+v, want %+v", got, want)
	}
}

// TestNodeFeatures: the node's reported features and firmware are stored
// as sent; a list past the bounds or a bad firmware value is refused and
// the stored ones kept.
func TestNodeFeatures(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(t, "feat", 0)
	register := func(f []string) error {
		_, err := nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, Total: Resources{CRU: 4, MRU: 8 << 30}, Features: f})
		return err
	}
	want := []string{"network", "zdb", "zmachine", "wireguard"}
	fw := &Firmware{BIOSVendor: "SeaBIOS", BIOSVersion: "1.16", BoardManufacturer: "QEMU", BoardProduct: "Standard PC"}
	if _, err := nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, Total: Resources{CRU: 4, MRU: 8 << 30}, Features: want, Firmware: fw}); err != nil {
		t.Fatal(err)
	}
	_, err := nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farm.ID, Total: Resources{CRU: 4, MRU: 8 << 30}, Features: want,
		Firmware: &Firmware{BIOSVendor: "bad\x00vendor"}})
	wantErr(t, "firmware with a control character", err, ErrInvalid)
	many := make([]string, maxFeatures+1)
	for i := range many {
		many[i] = "f"
	}
	wantErr(t, "too many features", register(many), ErrInvalid)
	wantErr(t, "empty feature", register([]string{""}), ErrInvalid)
	wantErr(t, "long feature", register([]string{strings.Repeat("x", maxFeatureLen+1)}), ErrInvalid)
	n, err := farmer.c.Node(ctx, node.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(n.Features, ",") != strings.Join(want, ",") {
		t.Fatalf("got features %v, want %v", n.Features, want)
	}
	if n.Firmware == nil || *n.Firmware != *fw {
		t.Fatalf("got firmware %+v, want %+v", n.Firmware, fw)
	}
}
