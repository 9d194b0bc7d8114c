package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/registry"
)

// TestDeployGateway: a name gateway without --node goes to the node with
// a domain (and, as no node runs here, its contract is canceled); bad
// gateways are refused before any contract is made.
func TestDeployGateway(t *testing.T) {
	grid := startGrid(t)
	g := "--grid=" + grid
	farmer, _ := newHome(t, grid)
	user, _ := newHome(t, grid)
	farm := newFarm(t, farmer, g, "gwfarm")
	token := strings.TrimSpace(mustRun(t, farmer, "farm", "token", itoa(uint64(farm.ID)), g))
	res := registry.Resources{CRU: 4, MRU: 8 << 30, SRU: 100 << 30}
	plain := registerNode(t, grid, token, farm.ID, res, registry.Location{})
	gw := registerNode(t, grid, token, farm.ID, res, registry.Location{})
	mustRun(t, user, "name", "reserve", "app", g)

	gwArgs := []string{"deploy", "gateway", "name", "--name", "app", "--backend", "http://10.1.2.3:8080", "--timeout", "2s", g}
	if _, errs, code := run(t, user, gwArgs...); code != 1 || !strings.Contains(errs, "no domain in its public config") {
		t.Fatalf("a name gateway with no node with a domain: exit %d, %q", code, errs)
	}
	// What is wrong with a deployment comes before where it could go.
	if _, errs, code := run(t, user, "deploy", "gateway", "name", "--name", "a.b", "--backend", "http://10.1.2.3:80", g); code != 1 || !strings.Contains(errs, "may only contain") {
		t.Fatalf("an invalid name gateway with no node with a domain: exit %d, %q", code, errs)
	}
	mustRun(t, farmer, "node", "public-config", itoa(uint64(gw.ID)), "--ipv4", "185.7.7.7/24", "--gw4", "185.7.7.1", "--domain", "gw.example.com", g)
	_, errs, code := run(t, user, gwArgs...)
	if code != 1 || !strings.Contains(errs, "picked node "+itoa(uint64(gw.ID))) || !strings.Contains(errs, "canceled") {
		t.Fatalf("a name gateway: exit %d, %q; want node %d picked (not %d), then canceled", code, errs, gw.ID, plain.ID)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"deploy", "gateway", "name", "--name", "app", g}, 2, "--backend"},
		{[]string{"deploy", "gateway", "name", "--backend", "http://10.1.2.3:80", g}, 2, "--name"},
		{[]string{"deploy", "gateway", "fqdn", "--backend", "http://10.1.2.3:80", g}, 2, "--fqdn"},
		{[]string{"deploy", "gateway", "fqdn", "--fqdn", "app.example.com", "--tls-passthrough", "--backend", "http://10.1.2.3:80", g}, 1, "must be ip:port with tls_passthrough"},
		{[]string{"deploy", "gateway", "fqdn", "--fqdn", "app.example.com", "--backend", "http://127.0.0.1:80", g}, 1, "loopback"},
		{[]string{"deploy", "gateway", "name", "--name", "a.b", "--backend", "http://10.1.2.3:80", g}, 1, "may only contain"},
		{[]string{"deploy", "gateway", "name", "--name", "app", "--backend", "http://10.1.2.3:80", "--network", "nonet", g}, 1, `no network "nonet"`},
	} {
		_, errs, code := run(t, user, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("zosctl %s: exit %d, %q; want exit %d with %q", strings.Join(tt.args, " "), code, errs, tt.code, tt.want)
		}
	}
	var cs []registry.Contract
	if err := json.Unmarshal([]byte(mustRun(t, user, "contract", "list", "--state", "created", "--json", g)), &cs); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.Type == registry.TypeNode {
			t.Errorf("contract %d left active after refused gateways", c.ID)
		}
	}
}
