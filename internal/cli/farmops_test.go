package cli

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/explorer"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/testutil"
)

// registerNode registers a node (as the node does, through the registry
// client) in farm with the farmer's token, and returns it.
func registerNode(t *testing.T, grid, token string, farm uint32, total registry.Resources, loc registry.Location) registry.Node {
	t.Helper()
	ctx := context.Background()
	key, _ := identity.Generate()
	nc, err := rmb.Connect(grid, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.NewClient(nc, key).CreateTwin(ctx, ""); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	var n registry.Node
	testutil.Eventually(t, 5*time.Second, "registering a node", func() (bool, error) {
		nc, err := rmb.Connect(grid, key)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		n, err = registry.NewClient(nc, key).RegisterNode(ctx, registry.NodeRegistration{FarmID: farm, FarmToken: token, Total: total, Location: loc})
		return err == nil, err
	})
	return n
}

// newFarm creates a farm as home's twin and returns its id as text.
func newFarm(t *testing.T, home, g, name string) registry.Farm {
	t.Helper()
	var farm registry.Farm
	if err := json.Unmarshal([]byte(mustRun(t, home, "farm", "create", name, g, "--json")), &farm); err != nil {
		t.Fatal(err)
	}
	return farm
}

// explorerCount asks the explorer, reading the same grid, how many
// records a query matches.
func explorerCount(t *testing.T, e *explorer.Explorer, path string) int {
	t.Helper()
	if err := e.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	e.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &items); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return len(items)
}

// TestFarmOps: a farmer's commands on nodes and IPs change what the
// explorer shows; another farm's farmer, and a user, are refused and
// change nothing; rent and unrent by a user.
func TestFarmOps(t *testing.T) {
	grid := startGrid(t)
	g := "--grid=" + grid
	farmer, _ := newHome(t, grid)
	otherFarmer, _ := newHome(t, grid)
	user, userTwin := newHome(t, grid)
	farm := newFarm(t, farmer, g, "opsfarm")
	newFarm(t, otherFarmer, g, "otherfarm")
	fid := itoa(uint64(farm.ID))
	token := strings.TrimSpace(mustRun(t, farmer, "farm", "token", fid, g))
	node := registerNode(t, grid, token, farm.ID, registry.Resources{CRU: 4, MRU: 8 << 30, SRU: 100 << 30}, registry.Location{Country: "BE"})
	nid := itoa(uint64(node.ID))

	key, err := identity.Load(filepath.Join(user, "key.json")) // the registry answers twins only
	if err != nil {
		t.Fatal(err)
	}
	nc, err := rmb.Connect(grid, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	e := explorer.New(explorer.Config{}, registry.NewClient(nc, key), testutil.Logger(t))

	// Public config: set, refused to others, cleared.
	withIPv4 := "/nodes?ipv4=true&farm_ids=" + fid
	for _, home := range []string{otherFarmer, user} {
		if _, errs, code := run(t, home, "node", "public-config", nid, "--ipv4", "185.5.5.5/24", "--gw4", "185.5.5.1", g); code != 1 || !strings.Contains(errs, "unauthorized") {
			t.Fatalf("public config by another twin: exit %d, %q", code, errs)
		}
	}
	if n := explorerCount(t, e, withIPv4); n != 0 {
		t.Fatalf("after refusals: the explorer shows %d nodes with ipv4, want 0", n)
	}
	mustRun(t, farmer, "node", "public-config", nid, "--ipv4", "185.5.5.5/24", "--gw4", "185.5.5.1", "--domain", "gw.example.com", g)
	if n := explorerCount(t, e, withIPv4+"&domain=true"); n != 1 {
		t.Fatalf("after set: the explorer shows %d nodes with ipv4 and domain, want 1", n)
	}
	if out := mustRun(t, user, "node", "list", "--ipv4", "--domain", g); !strings.Contains(out, "BE") {
		t.Fatalf("node list --ipv4 --domain: %q", out)
	}
	mustRun(t, farmer, "node", "public-config", nid, "--clear", g)
	if n := explorerCount(t, e, withIPv4); n != 0 {
		t.Fatalf("after clear: the explorer shows %d nodes with ipv4, want 0", n)
	}

	// Public IPs: add, remove; another farmer cannot remove them.
	mustRun(t, farmer, "farm", "add-ip", "--farm", fid, "185.6.6.2/24", "--gw", "185.6.6.1", g)
	mustRun(t, farmer, "farm", "add-ip", "--farm", fid, "185.6.6.3/24", "--gw", "185.6.6.1", g)
	if _, errs, code := run(t, otherFarmer, "farm", "remove-ip", "--farm", fid, "185.6.6.2", g); code != 1 || !strings.Contains(errs, "belongs to twin") {
		t.Fatalf("remove-ip by another farmer: exit %d, %q", code, errs)
	}
	if n := explorerCount(t, e, "/public_ips?farm_ids="+fid); n != 2 {
		t.Fatalf("the explorer shows %d ips, want 2", n)
	}
	mustRun(t, farmer, "farm", "remove-ip", "--farm", fid, "185.6.6.2", g)
	if n := explorerCount(t, e, "/public_ips?farm_ids="+fid); n != 1 {
		t.Fatalf("after remove-ip: the explorer shows %d ips, want 1", n)
	}

	// Power target: another farmer is refused; the farmer's target shows
	// as standby.
	if _, errs, code := run(t, otherFarmer, "node", "power", nid, "down", g); code != 1 || !strings.Contains(errs, "unauthorized") {
		t.Fatalf("power by another farmer: exit %d, %q", code, errs)
	}
	if n := explorerCount(t, e, "/nodes?status=standby"); n != 0 {
		t.Fatalf("after a refused power target: %d nodes in standby, want 0", n)
	}
	mustRun(t, farmer, "node", "power", nid, "down", g)
	if n := explorerCount(t, e, "/nodes?status=standby&farm_ids="+fid); n != 1 {
		t.Fatalf("after power down: %d nodes in standby, want 1", n)
	}
	if out := mustRun(t, farmer, "farm", "nodes", fid, g); !strings.Contains(out, "standby") || !strings.Contains(out, "down") {
		t.Fatalf("farm nodes: %q", out)
	}
	mustRun(t, farmer, "node", "power", nid, "up", g)

	// Rent: the user rents, the explorer shows it, another cannot
	// unrent, the user unrents.
	mustRun(t, user, "node", "rent", nid, g)
	if n := explorerCount(t, e, "/nodes?rented_by="+itoa(uint64(userTwin))); n != 1 {
		t.Fatalf("after rent: %d nodes rented by the user, want 1", n)
	}
	var views []nodeView
	if err := json.Unmarshal([]byte(mustRun(t, user, "node", "list", "--rented", "--json", g)), &views); err != nil {
		t.Fatal(err)
	}
	if len(views) != 1 || views[0].RentedBy != userTwin {
		t.Fatalf("node list --rented: got %+v, want node %d rented by %d", views, node.ID, userTwin)
	}
	if _, errs, code := run(t, farmer, "node", "rent", nid, g); code != 1 || !strings.Contains(errs, "rented") {
		t.Fatalf("renting a rented node: exit %d, %q", code, errs)
	}
	if _, errs, code := run(t, otherFarmer, "node", "unrent", nid, g); code != 1 || !strings.Contains(errs, "not by yours") {
		t.Fatalf("unrent by another twin: exit %d, %q", code, errs)
	}
	mustRun(t, user, "node", "unrent", nid, g)
	if n := explorerCount(t, e, "/nodes?rented=true"); n != 0 {
		t.Fatalf("after unrent: %d rented nodes, want 0", n)
	}
	if _, errs, code := run(t, user, "node", "unrent", nid, g); code != 1 || !strings.Contains(errs, "not rented") {
		t.Fatalf("unrent again: exit %d, %q", code, errs)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"node", "public-config", nid, g},
		{"node", "public-config", nid, "--clear", "--ipv4", "1.2.3.4/24", g},
		{"node", "power", nid, "sideways", g},
		{"node", "power", "x", "up", g},
		{"node", "rent", g},
		{"farm", "remove-ip", "185.6.6.3", g},
		{"farm", "nodes", g},
	} {
		if _, _, code := run(t, farmer, args...); code != 2 {
			t.Errorf("zosctl %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
}

// TestNodeListAndPlacement: node list filters a grid of nodes with
// different capacity; a deployment without --node that no node fits is
// refused with the reasons, and creates no contract; one sent to a node
// that does not answer is canceled, or kept with --keep-on-error.
func TestNodeListAndPlacement(t *testing.T) {
	grid := startGrid(t)
	g := "--grid=" + grid
	farmer, _ := newHome(t, grid)
	user, _ := newHome(t, grid)
	farm := newFarm(t, farmer, g, "capfarm")
	fid := itoa(uint64(farm.ID))
	token := strings.TrimSpace(mustRun(t, farmer, "farm", "token", fid, g))
	small := registerNode(t, grid, token, farm.ID, registry.Resources{CRU: 2, MRU: 4 << 30, SRU: 50 << 30}, registry.Location{Country: "BE", City: "Ghent"})
	big := registerNode(t, grid, token, farm.ID, registry.Resources{CRU: 16, MRU: 64 << 30, SRU: 1000 << 30, HRU: 4000 << 30}, registry.Location{Country: "EG", City: "Cairo"})

	list := func(args ...string) string {
		var views []nodeView
		if err := json.Unmarshal([]byte(mustRun(t, user, append([]string{"node", "list", "--json", g}, args...)...)), &views); err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, v := range views {
			s = append(s, itoa(uint64(v.ID)))
		}
		return strings.Join(s, ",")
	}
	both := itoa(uint64(small.ID)) + "," + itoa(uint64(big.ID))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, both},
		{[]string{"--free-mru", "10G"}, itoa(uint64(big.ID))},
		{[]string{"--free-hru", "1T"}, itoa(uint64(big.ID))},
		{[]string{"--free-cru", "3"}, itoa(uint64(big.ID))},
		{[]string{"--city", "ghent"}, itoa(uint64(small.ID))},
		{[]string{"--farm", fid, "--sort", "free_mru", "--desc"}, itoa(uint64(big.ID)) + "," + itoa(uint64(small.ID))},
		{[]string{"--size", "1", "--page", "2"}, itoa(uint64(big.ID))},
		{[]string{"--rentable"}, both},
		{[]string{"--free-ips", "1"}, ""},
	} {
		if got := list(tt.args...); got != tt.want {
			t.Errorf("node list %s: got [%s], want [%s]", strings.Join(tt.args, " "), got, tt.want)
		}
	}
	for _, args := range [][]string{{"--sort", "price"}, {"--page", "0"}, {"--free-mru", "lots"}, {"--rentable=maybe"}} {
		if _, errs, code := run(t, user, append([]string{"node", "list", g}, args...)...); code == 0 || errs == "" {
			t.Errorf("node list %s: exit %d, %q, want an error", strings.Join(args, " "), code, errs)
		}
	}

	contracts := func() int {
		var cs []registry.Contract
		if err := json.Unmarshal([]byte(mustRun(t, user, "contract", "list", "--json", g)), &cs); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, c := range cs {
			if c.State == registry.StateCreated {
				n++
			}
		}
		return n
	}
	// Impossible constraints: a clear error, no contract.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy", "zdb", "--size", "100T", g}, "none of the 2 nodes"},
		{[]string{"deploy", "volume", "--size", "100G", "--country", "BE", g}, "SSD free"},
		{[]string{"deploy", "zdb", "--size", "1G", "--farm", "999", g}, "no node is up and available to you (farm [999])"},
	} {
		_, errs, code := run(t, user, tt.args...)
		if code != 1 || !strings.Contains(errs, "no node fits") || !strings.Contains(errs, tt.want) {
			t.Errorf("zosctl %s: exit %d, %q, want %q", strings.Join(tt.args, " "), code, errs, tt.want)
		}
	}
	if _, _, code := run(t, user, "deploy", "zdb", "--size", "1G", "--node", itoa(uint64(big.ID)), "--farm", fid, g); code != 2 {
		t.Errorf("deploy with --node and --farm: exit %d, want 2", code)
	}
	if n := contracts(); n != 0 {
		t.Fatalf("after refused placements: %d active contracts, want 0", n)
	}

	// The nodes here do not run: a deployment picks the big one, is never
	// taken, and its contract is canceled; --keep-on-error keeps it.
	_, errs, code := run(t, user, "deploy", "volume", "--size", "60G", "--timeout", "2s", g)
	if code != 1 || !strings.Contains(errs, "picked node "+itoa(uint64(big.ID))) || !strings.Contains(errs, "canceled") {
		t.Fatalf("deploy to a silent node: exit %d, %q", code, errs)
	}
	if n := contracts(); n != 0 {
		t.Fatalf("after a failed deploy: %d active contracts, want 0", n)
	}
	_, errs, code = run(t, user, "deploy", "volume", "--size", "1G", "--node", itoa(uint64(small.ID)), "--timeout", "2s", "--keep-on-error", g)
	if code != 1 || !strings.Contains(errs, "kept (--keep-on-error)") {
		t.Fatalf("deploy --keep-on-error to a silent node: exit %d, %q", code, errs)
	}
	if n := contracts(); n != 1 {
		t.Fatalf("after a failed deploy with --keep-on-error: %d active contracts, want 1", n)
	}
}
