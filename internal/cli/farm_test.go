package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// TestFarmToken: the farmer prints a token that the registry accepts for a
// node joining the farm; nobody else gets one for that farm.
func TestFarmToken(t *testing.T) {
	grid := startGrid(t)
	g := "--grid=" + grid
	farmer, _ := newHome(t, grid)
	other, _ := newHome(t, grid)
	var farm registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "create", "tokenfarm", g, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	fid := itoa(uint64(farm.ID))

	var view farmTokenView
	before := time.Now()
	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "token", fid, "--expires", "2h", g, "--json")), &view); err != nil {
		t.Fatal(err)
	}
	tok, err := registry.ParseFarmToken(view.Token)
	if err != nil {
		t.Fatalf("parsing the printed token: %v", err)
	}
	if tok.FarmID != farm.ID || view.ID != tok.IDHex() || !tok.Expires.Equal(view.Expires) {
		t.Fatalf("token %+v, view %+v: want farm %d", tok, view, farm.ID)
	}
	if d := tok.Expires.Sub(before); d < 2*time.Hour-time.Minute || d > 2*time.Hour+time.Minute {
		t.Fatalf("token expires in %s, want 2h", d)
	}
	plain := strings.TrimSpace(mustRun(t, farmer, "farm", "token", fid, g))
	if _, err := registry.ParseFarmToken(plain); err != nil || strings.ContainsAny(plain, " \n") {
		t.Fatalf("plain output %q: %v", plain, err)
	}

	// The registry lets a node in with it.
	ctx := context.Background()
	nodeKey, _ := identity.Generate()
	nc, err := rmb.Connect(grid, nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.NewClient(nc, nodeKey).CreateTwin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	// The twin's rights start with its next connection, once the
	// registry has seen it.
	var n registry.Node
	_ = testutil.Poll(5*time.Second, func() (bool, error) {
		nc, cerr := rmb.Connect(grid, nodeKey)
		if cerr != nil {
			t.Fatal(cerr)
		}
		n, err = registry.NewClient(nc, nodeKey).RegisterNode(ctx, registry.NodeRegistration{FarmID: farm.ID, FarmToken: plain})
		nc.Close()
		return err == nil, err
	})
	if err != nil || n.FarmID != farm.ID {
		t.Fatalf("registering with the token: got %+v, %v", n, err)
	}

	// Another twin gets no token of this farm, and bad arguments are
	// usage errors.
	if _, errs, code := run(t, other, "farm", "token", fid, g); code != 1 || !strings.Contains(errs, "belongs to twin") {
		t.Fatalf("token of another's farm: exit %d, %q", code, errs)
	}
	for _, args := range [][]string{
		{"farm", "token", g},
		{"farm", "token", "x", g},
		{"farm", "token", "0", g},
		{"farm", "token", fid, "--expires", "-1h", g},
	} {
		if _, _, code := run(t, farmer, args...); code != 2 {
			t.Errorf("zosctl %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}

// TestFarmChannel: the farmer chooses the farm's release channel; another
// twin cannot.
func TestFarmChannel(t *testing.T) {
	grid := startGrid(t)
	g := "--grid=" + grid
	farmer, _ := newHome(t, grid)
	other, _ := newHome(t, grid)
	var farm registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "create", "chanfarm", g, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	fid := itoa(uint64(farm.ID))
	if out := mustRun(t, farmer, "farm", "channel", fid, "testing", g); !strings.Contains(out, `"testing"`) {
		t.Errorf("output %q", out)
	}
	if _, errs, code := run(t, other, "farm", "channel", fid, "production", g); code == 0 || !strings.Contains(errs, "belongs to twin") {
		t.Errorf("another twin: exit %d, %q", code, errs)
	}
	var farms []registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, farmer, "farm", "list", g, "--json")), &farms); err != nil {
		t.Fatal(err)
	}
	for _, f := range farms {
		if f.ID == farm.ID && f.Channel != "testing" {
			t.Fatalf("got channel %q, want testing", f.Channel)
		}
	}
}
