package registry

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/zos-go/zos/internal/identity"
)

func TestFarmTokenForm(t *testing.T) {
	k, err := identity.Generate()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := identity.Generate()
	now := time.Now()
	tok, err := NewFarmToken(k, 7, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	if len(s) != maxFarmTokenLen || strings.ContainsAny(s, " \t\"=") {
		t.Fatalf("token %q: got %d characters, want %d with no space, quote or '='", s, len(s), maxFarmTokenLen)
	}
	got, err := ParseFarmToken(s)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	if got != tok {
		t.Fatalf("round trip: got %+v, want %+v", got, tok)
	}
	if err := got.Verify(k.Public(), now); err != nil {
		t.Fatalf("verify: %v", err)
	}
	wantErr(t, "other key", got.Verify(other.Public(), now), ErrBadSignature)
	wantErr(t, "expired", got.Verify(k.Public(), now.Add(2*time.Hour)), ErrUnauthorized)
	wantErr(t, "at expiry", got.Verify(k.Public(), tok.Expires), ErrUnauthorized)

	// Each claim is covered by the signature.
	for name, change := range map[string]func(*FarmToken){
		"farm":    func(t *FarmToken) { t.FarmID = 8 },
		"expires": func(t *FarmToken) { t.Expires = t.Expires.Add(time.Hour) },
		"id":      func(t *FarmToken) { t.ID[0] ^= 1 },
	} {
		forged := tok
		change(&forged)
		again, err := ParseFarmToken(forged.String())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wantErr(t, "changed "+name, again.Verify(k.Public(), now), ErrBadSignature)
	}

	// The signed bytes are never text: a NATS server's nonce, which the
	// twin key signs when it connects, cannot be a token's.
	if utf8.Valid(tok.signingBytes()) {
		t.Fatal("token signing bytes are valid UTF-8")
	}
	// A registry write's signature is no token's signature.
	req, _ := newSignedRequest(k, OpFarmCreate, farmCreateReq{Name: "x"}, now)
	var r signedRequest
	_ = json.Unmarshal(req, &r)
	sig, _ := hex.DecodeString(r.Signature)
	forged := tok
	copy(forged.Signature[:], sig)
	wantErr(t, "registry signature as token", forged.Verify(k.Public(), now), ErrBadSignature)

	bad := []string{
		"",
		"zft1_",
		"zft2_" + s[len(FarmTokenPrefix):],
		s[:len(s)-1],
		s + "A",
		s[:len(s)-1] + "=",
		strings.Replace(s, "_", "+", 1),
		FarmTokenPrefix + strings.Repeat("A", maxFarmTokenLen-len(FarmTokenPrefix)), // farm 0
		strings.Repeat("x", 10000),
	}
	for _, b := range bad {
		if _, err := ParseFarmToken(b); err == nil {
			t.Errorf("ParseFarmToken(%.40q): got no error", b)
		}
	}
	if _, err := NewFarmToken(k, 0, now.Add(time.Hour)); err == nil {
		t.Error("token of farm 0: got no error")
	}
	if _, err := NewFarmToken(identity.Key{}, 1, now.Add(time.Hour)); err == nil {
		t.Error("token without a key: got no error")
	}
}

// TestNodeEnrolment: a node joins or moves to a farm only with a token
// the farm's twin signed; registering again in its own farm needs none.
func TestNodeEnrolment(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmerA, farmA, _, _ := g.farmWithNode(t, "farm-a", 0)
	farmerB, farmB, _, _ := g.farmWithNode(t, "farm-b", 0)
	attacker := g.user(t)
	token := func(k identity.Key, farm uint32, d time.Duration) string {
		tok, err := NewFarmToken(k, farm, time.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return tok.String()
	}
	noNode := func(what string) {
		t.Helper()
		_, err := attacker.c.NodeByTwin(ctx, attacker.twin.ID)
		wantErr(t, what+": node of the attacker", err, ErrNotFound)
	}
	register := func(u *user, farm uint32, tok string) (Node, error) {
		return u.c.RegisterNode(ctx, NodeRegistration{FarmID: farm, FarmToken: tok, Total: Resources{CRU: 1}})
	}

	refused := []struct {
		name  string
		token string
		want  error
	}{
		{"no token", "", ErrUnauthorized},
		{"token of another farm", token(farmerB.key, farmB.ID, time.Hour), ErrUnauthorized},
		{"token signed by the attacker", token(attacker.key, farmA.ID, time.Hour), ErrBadSignature},
		{"token of farm A signed by farmer B", token(farmerB.key, farmA.ID, time.Hour), ErrBadSignature},
		{"expired token", token(farmerA.key, farmA.ID, -time.Second), ErrUnauthorized},
		{"garbage token", "zft1_garbage", ErrInvalid},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			_, err := register(attacker, farmA.ID, tt.token)
			wantErr(t, tt.name, err, tt.want)
			noNode(tt.name)
		})
	}
	_, err := register(attacker, 999, token(farmerA.key, 999, time.Hour))
	wantErr(t, "unknown farm", err, ErrNotFound)
	noNode("unknown farm")

	// With the farmer's consent.
	joinA := token(farmerA.key, farmA.ID, time.Hour)
	n, err := register(attacker, farmA.ID, joinA)
	if err != nil || n.FarmID != farmA.ID {
		t.Fatalf("register with token: got %+v, %v; want a node in farm %d", n, err, farmA.ID)
	}
	// Restarts need no valid token.
	for _, tok := range []string{"", token(farmerA.key, farmA.ID, -time.Hour), "zft1_garbage"} {
		again, err := register(attacker, farmA.ID, tok)
		if err != nil || again.ID != n.ID || again.FarmID != farmA.ID {
			t.Fatalf("re-register with token %.12q: got %+v, %v; want node %d in farm %d", tok, again, err, n.ID, farmA.ID)
		}
	}
	if err := farmerA.c.SetPublicConfig(ctx, n.ID, &PublicConfig{IPv4: "185.2.0.5/24", GW4: "185.2.0.1"}); err != nil {
		t.Fatal(err)
	}
	if err := farmerA.c.SetPowerTarget(ctx, n.ID, PowerDown); err != nil {
		t.Fatal(err)
	}

	// Moving needs the consent of the farm it moves to.
	for _, tok := range []string{"", joinA, token(farmerB.key, farmB.ID, -time.Second), token(attacker.key, farmB.ID, time.Hour)} {
		_, err := register(attacker, farmB.ID, tok)
		if err == nil {
			t.Fatalf("move to farm %d with token %.12q: got no error", farmB.ID, tok)
		}
		if got, _ := attacker.c.Node(ctx, n.ID); got.FarmID != farmA.ID || got.PublicConfig == nil {
			t.Fatalf("after a refused move: got farm %d, public config %v; want farm %d, unchanged", got.FarmID, got.PublicConfig, farmA.ID)
		}
	}
	moved, err := register(attacker, farmB.ID, token(farmerB.key, farmB.ID, time.Hour))
	if err != nil || moved.ID != n.ID || moved.FarmID != farmB.ID {
		t.Fatalf("move with token: got %+v, %v; want node %d in farm %d", moved, err, n.ID, farmB.ID)
	}
	// What farmer A set does not follow the node into farm B.
	if moved.PublicConfig != nil || moved.PowerTarget != "" {
		t.Fatalf("moved node keeps farm %d's settings: public config %v, power target %q", farmA.ID, moved.PublicConfig, moved.PowerTarget)
	}
	wantErr(t, "old farmer sets public config", farmerA.c.SetPublicConfig(ctx, n.ID, nil), ErrUnauthorized)
}

// TestFarmerSettingsRecheckFarm: a farmer's setting (public config, power
// target) is refused with ErrConflict when the node moved to another farm
// between the ownership check and the write, and the node keeps nothing
// of it.
func TestFarmerSettingsRecheckFarm(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmerA, _, nodeUser, n := g.farmWithNode(t, "farm-a", 0)
	farmerB, farmB, _, _ := g.farmWithNode(t, "farm-b", 0)
	tests := []struct {
		name string
		kind string
		set  func(*Node)
	}{
		{"public config", EventPublicConfigChanged, func(n *Node) { n.PublicConfig = &PublicConfig{IPv4: "185.2.0.5/24", GW4: "185.2.0.1"} }},
		{"power target", EventPowerTargetChanged, func(n *Node) { n.PowerTarget = PowerDown }},
	}
	var owned []Node
	for range tests {
		o, err := g.svc.farmerNode(ctx, farmerA.key.PublicHex(), n.ID)
		if err != nil {
			t.Fatalf("farmer A's node before the move: %v", err)
		}
		owned = append(owned, o)
	}
	// The node moves to farm B after farmer A's check.
	if _, err := nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farmB.ID, FarmToken: farmToken(t, farmerB, farmB.ID),
		Total: Resources{CRU: 4, MRU: 8 << 30}}); err != nil {
		t.Fatalf("moving node %d to farm %d: %v", n.ID, farmB.ID, err)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := g.svc.setFarmerNode(ctx, owned[i], tt.name, tt.kind, tt.set)
			wantErr(t, "farmer A sets "+tt.name+" of a moved node", err, ErrConflict)
			got, err := nodeUser.c.Node(ctx, n.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.FarmID != farmB.ID || got.PublicConfig != nil || got.PowerTarget != "" {
				t.Fatalf("after the refused write: got farm %d, public config %v, power target %q; want farm %d, none set",
					got.FarmID, got.PublicConfig, got.PowerTarget, farmB.ID)
			}
		})
	}
	// The new farmer's settings go through the same path.
	if err := farmerB.c.SetPowerTarget(ctx, n.ID, PowerDown); err != nil {
		t.Fatalf("farmer B sets power target: %v", err)
	}
}

// TestMovedNodeReleasesIPs: the public IPs of a contract go back to the
// farm they were reserved in, even after the node moved to another farm.
func TestMovedNodeReleasesIPs(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmerA, farmA, nodeUser, node := g.farmWithNode(t, "farm-a", 1)
	farmerB, farmB, _, _ := g.farmWithNode(t, "farm-b", 1)
	u := g.user(t)
	c, err := u.c.CreateNodeContract(ctx, node.ID, "abcd", "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if c.FarmID != farmA.ID {
		t.Fatalf("contract farm: got %d, want %d", c.FarmID, farmA.ID)
	}
	if _, err := nodeUser.c.RegisterNode(ctx, NodeRegistration{FarmID: farmB.ID, FarmToken: farmToken(t, farmerB, farmB.ID)}); err != nil {
		t.Fatalf("moving the node: %v", err)
	}
	if err := u.c.CancelContract(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []uint32{farmA.ID, farmB.ID} {
		f, err := u.c.Farm(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, ip := range f.PublicIPs {
			if ip.ContractID != 0 {
				t.Errorf("farm %d: ip %s still held by contract %d", id, ip.IP, ip.ContractID)
			}
		}
	}
	// Farm A's only IP serves a new node of farm A; the moved node's
	// contracts take farm B's.
	newcomer := g.user(t)
	nodeA2, err := newcomer.c.RegisterNode(ctx, NodeRegistration{FarmID: farmA.ID, FarmToken: farmToken(t, farmerA, farmA.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := u.c.CreateNodeContract(ctx, nodeA2.ID, "abcd", "", 1); err != nil || c.FarmID != farmA.ID {
		t.Fatalf("contract on farm A's new node: got %+v, %v; want farm %d's ip", c, err, farmA.ID)
	}
	if c, err := u.c.CreateNodeContract(ctx, node.ID, "abcd", "", 1); err != nil || c.FarmID != farmB.ID {
		t.Fatalf("contract on the moved node: got %+v, %v; want farm %d's ip", c, err, farmB.ID)
	}
}

// TestRentWithTenants: a node is rented only when no other twin runs
// contracts on it; a rented node takes no contracts of other twins.
func TestRentWithTenants(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	_, _, _, node := g.farmWithNode(t, "farm1", 0)
	tenant := g.user(t)
	renter := g.user(t)
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "abcd", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = renter.c.CreateRentContract(ctx, node.ID)
	wantErr(t, "rent over another tenant", err, ErrUnauthorized)
	if cs, _ := renter.c.Contracts(ctx, ContractFilter{NodeID: node.ID, Type: TypeRent}); len(cs) != 0 {
		t.Fatalf("refused rent left contracts: %+v", cs)
	}
	// The tenant still deploys: the refused rent holds nothing.
	if _, err := tenant.c.CreateNodeContract(ctx, node.ID, "ef", "", 0); err != nil {
		t.Fatalf("tenant after a refused rent: %v", err)
	}

	// The tenant may rent the node it alone uses.
	if err := tenant.c.CancelContract(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	rent, err := tenant.c.CreateRentContract(ctx, node.ID)
	wantErr(t, "rent while a second contract of the tenant runs", err, nil)
	_, err = renter.c.CreateNodeContract(ctx, node.ID, "abcd", "", 0)
	wantErr(t, "contract on a node rented by another", err, ErrNodeRented)
	_, err = renter.c.CreateRentContract(ctx, node.ID)
	wantErr(t, "second rent", err, ErrNodeRented)
	if err := tenant.c.CancelContract(ctx, rent.ID); err != nil {
		t.Fatal(err)
	}
	// Free again, but the tenant's contract still runs.
	_, err = renter.c.CreateRentContract(ctx, node.ID)
	wantErr(t, "rent after the tenant's rent ended", err, ErrUnauthorized)
}

// TestRentRace: rents and contracts of different twins sent at once on one
// node never leave both a rent and another twin's contract.
func TestRentRace(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	for i := range 5 {
		_, _, _, node := g.farmWithNode(t, "farm"+string(rune('a'+i)), 0)
		a, b := g.user(t), g.user(t)
		done := make(chan error, 2)
		go func() { _, err := a.c.CreateRentContract(ctx, node.ID); done <- err }()
		go func() { _, err := b.c.CreateNodeContract(ctx, node.ID, "abcd", "", 0); done <- err }()
		<-done
		<-done
		rents, err := a.c.Contracts(ctx, ContractFilter{NodeID: node.ID, Type: TypeRent, State: StateCreated})
		if err != nil {
			t.Fatal(err)
		}
		others, err := a.c.Contracts(ctx, ContractFilter{NodeID: node.ID, Type: TypeNode, State: StateCreated, TwinID: b.twin.ID})
		if err != nil {
			t.Fatal(err)
		}
		if len(rents) > 0 && len(others) > 0 {
			t.Fatalf("node %d: rented by twin %d while twin %d runs contract %d", node.ID, a.twin.ID, b.twin.ID, others[0].ID)
		}
	}
}

// TestCapacityLimits: capacity values near 2^64 are refused, so that the
// registry's sums never wrap around.
func TestCapacityLimits(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(t, "farm1", 0)
	u := g.user(t)
	c1, err := u.c.CreateNodeContract(ctx, node.ID, "ab", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := u.c.CreateNodeContract(ctx, node.ID, "cd", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	tok := farmToken(t, farmer, farm.ID)
	huge := uint64(math.MaxUint64)
	for _, tt := range []struct {
		name string
		reg  NodeRegistration
	}{
		{"total near 2^64", NodeRegistration{FarmID: farm.ID, Total: Resources{MRU: huge}}},
		{"total above the limit", NodeRegistration{FarmID: farm.ID, Total: Resources{CRU: MaxResource + 1}}},
		{"reserved near 2^64", NodeRegistration{FarmID: farm.ID, Reserved: Resources{HRU: huge - 1}}},
	} {
		tt.reg.FarmToken = tok
		_, err := nodeUser.c.RegisterNode(ctx, tt.reg)
		wantErr(t, tt.name, err, ErrInvalid)
	}
	if n, _ := u.c.Node(ctx, node.ID); n.Total.MRU != 8<<30 || n.Total.CRU != 4 {
		t.Fatalf("refused registrations changed the node: total %+v", n.Total)
	}
	ok := NodeRegistration{FarmID: farm.ID, Total: Resources{CRU: MaxResource, MRU: MaxResource, SRU: MaxResource, HRU: MaxResource}}
	if _, err := nodeUser.c.RegisterNode(ctx, ok); err != nil {
		t.Fatalf("registering at the limit: %v", err)
	}

	// Two uses whose sum wraps around 2^64 (2^63 + 2^63 = 0).
	half := uint64(1) << 63
	wrap := map[uint64]Resources{c1.ID: {SRU: half}, c2.ID: {SRU: half}}
	wantErr(t, "used wrapping around", nodeUser.c.ReportUsed(ctx, node.ID, wrap), ErrInvalid)
	over := map[uint64]Resources{c1.ID: {MRU: MaxResource}, c2.ID: {MRU: 1}}
	wantErr(t, "used sum above the limit", nodeUser.c.ReportUsed(ctx, node.ID, over), ErrInvalid)
	one := map[uint64]Resources{c1.ID: {CRU: huge}}
	wantErr(t, "one use near 2^64", nodeUser.c.ReportUsed(ctx, node.ID, one), ErrInvalid)
	for _, id := range []uint64{c1.ID, c2.ID} {
		if c, _ := u.c.Contract(ctx, id); c.Used != (Resources{}) {
			t.Fatalf("refused reports changed contract %d: used %+v", id, c.Used)
		}
	}
	fine := map[uint64]Resources{c1.ID: {MRU: MaxResource - 1}, c2.ID: {MRU: 1}}
	if err := nodeUser.c.ReportUsed(ctx, node.ID, fine); err != nil {
		t.Fatalf("report at the limit: %v", err)
	}
	if n, _ := u.c.Node(ctx, node.ID); n.Used.MRU != MaxResource {
		t.Fatalf("node used: got %d, want %d", n.Used.MRU, uint64(MaxResource))
	}
}

func TestResourcesPlus(t *testing.T) {
	max := uint64(math.MaxUint64)
	tests := []struct {
		name string
		a, b Resources
		want Resources
	}{
		{"small", Resources{CRU: 1, MRU: 2}, Resources{CRU: 3, HRU: 4}, Resources{CRU: 4, MRU: 2, HRU: 4}},
		{"at the top", Resources{SRU: max - 1}, Resources{SRU: 1}, Resources{SRU: max}},
		{"wrapping", Resources{CRU: max, MRU: 1 << 63}, Resources{CRU: 2, MRU: 1 << 63}, Resources{CRU: max, MRU: max}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Plus(tt.b); got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
