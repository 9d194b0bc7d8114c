package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/identity"
)

// FuzzSignedRequest feeds arbitrary bytes to the parsing and checking of a
// write: it must never panic, and only a real signature verifies.
func FuzzSignedRequest(f *testing.F) {
	k, err := identity.FromSeed(make([]byte, identity.SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	good, _ := newSignedRequest(k, OpFarmCreate, farmCreateReq{Name: "f"}, time.Unix(0, 1))
	f.Add(good)
	f.Add([]byte(`{"op":"farm.create","key":"00","payload":{}}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r signedRequest
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		pub, err := r.verify()
		if err == nil && len(pub) == 0 {
			t.Fatal("verified without a key")
		}
		var req NodeRegistration
		_ = decode(r.Payload, &req)
	})
}

// FuzzRegistryHandlers feeds arbitrary bytes to every operation of a
// running service through handle (what serve runs for each request it
// receives): as the whole request, as the payload of a request signed by
// a registered twin, and as the payload of a request whose signature does
// not match the key it claims. Nothing panics, no input makes an internal
// error, and only validly signed writes change a record.
func FuzzRegistryHandlers(f *testing.F) {
	g := newGrid(f)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(f, "fuzzfarm", 2)
	tenant := g.user(f)
	c, err := tenant.c.CreateNodeContract(ctx, node.ID, "abcd", "meta", 1)
	if err != nil {
		f.Fatal(err)
	}
	signers := []identity.Key{farmer.key, nodeUser.key, tenant.key}
	attacker, err := identity.Generate()
	if err != nil {
		f.Fatal(err)
	}
	hs := g.svc.handlers()
	var ops []string
	for op := range hs {
		ops = append(ops, op)
	}
	sort.Strings(ops)

	tok := farmToken(f, farmer, farm.ID)
	seeds := map[string]any{
		OpTwinCreate:       twinCreateReq{Relay: "relay.example.com"},
		OpFarmCreate:       farmCreateReq{Name: "seedfarm"},
		OpFarmAddIP:        farmAddIPReq{FarmID: farm.ID, IP: "185.9.0.2/24", Gateway: "185.9.0.1"},
		OpFarmChannel:      farmChannelReq{FarmID: farm.ID, Channel: "testing"},
		OpFarmRemoveIP:     farmRemoveIPReq{FarmID: farm.ID, IP: "185.9.0.2"},
		OpFarmPowerPolicy:  farmPowerPolicyReq{FarmID: farm.ID, Policy: &PowerPolicy{MinAwake: 1}},
		OpNodeRegister:     NodeRegistration{FarmID: farm.ID, FarmToken: tok, Total: Resources{CRU: 2, MRU: 1 << 30}},
		OpNodeUptime:       nodeUptimeReq{NodeID: node.ID, Uptime: 5},
		OpNodePublicConfig: nodePublicConfigReq{NodeID: node.ID, Config: &PublicConfig{IPv4: "185.2.0.5/24", GW4: "185.2.0.1"}},
		OpNodeUsed:         nodeUsedReq{NodeID: node.ID, Used: map[uint64]Resources{c.ID: {CRU: 1}}},
		OpNodePowerTarget:  nodePowerReq{NodeID: node.ID, Power: PowerDown},
		OpNodePower:        nodePowerReq{NodeID: node.ID, Power: PowerUp},
		OpNodeLocation:     nodeLocationReq{NodeID: node.ID, Location: &Location{Country: "Belgium", City: "Ghent"}},
		OpContractCreate:   contractCreateReq{NodeID: node.ID, Hash: "ab", PublicIPs: 1},
		OpContractUpdate:   contractUpdateReq{ID: c.ID, Hash: "cd", Metadata: "m"},
		OpContractCancel:   contractIDReq{ID: c.ID},
		OpNameCreate:       nameCreateReq{Name: "seedname"},
		OpRentCreate:       rentCreateReq{NodeID: node.ID},
		OpTwinGet:          getReq{ID: uint64(farmer.twin.ID)},
		OpTwinList:         listReq{},
		OpFarmGet:          getReq{ID: uint64(farm.ID)},
		OpFarmList:         listReq{After: 1},
		OpNodeGet:          getReq{Twin: nodeUser.twin.ID},
		OpNodeList:         listReq{},
		OpContractGet:      getReq{ID: c.ID},
		OpContractList:     listReq{Contract: ContractFilter{NodeID: node.ID, State: StateCreated}},
		OpEventsInfo:       struct{}{},
		OpEventsFetch:      eventsFetchReq{NodeID: node.ID, Max: 2},
		OpBalanceDeposit:   depositReq{TwinID: tenant.twin.ID, Amount: 5},
		OpBalanceTransfer:  transferReq{To: farmer.twin.ID, Amount: 1},
		OpUsageReport: usageReportReq{Reports: []billing.UsageReport{{NodeID: node.ID, ContractID: c.ID,
			Start: c.Created.Unix(), End: c.Created.Unix() + 1, CRU: 1}}},
		OpBalanceGet:      twinReq{TwinID: tenant.twin.ID},
		OpLedgerList:      twinReq{TwinID: tenant.twin.ID, After: 1},
		OpContractBills:   getReq{ID: c.ID},
		OpGridInfo:        struct{}{},
		OpContractBilling: getReq{ID: c.ID},
		OpFarmPricing:     farmPricingReq{FarmID: farm.ID, Pricing: &Pricing{CU: 60000, SU: 50000, IPv4: 40000, NU: 15000}},
	}
	for i, op := range ops {
		p, err := json.Marshal(seeds[op])
		if err != nil {
			f.Fatal(err)
		}
		for mode := range uint8(3 * len(signers)) {
			f.Add(uint8(i), mode, p)
		}
		f.Add(uint8(i), uint8(0), []byte(`{"op":"`+op+`","key":"00","payload":{}}`))
	}
	f.Add(uint8(0), uint8(1), []byte(`{`))
	f.Add(uint8(0), uint8(1), []byte(`{"relay":"`+strings.Repeat("x", 300)+`"}`))

	f.Fuzz(func(t *testing.T, opIndex, mode uint8, data []byte) {
		op := ops[int(opIndex)%len(ops)]
		signer := signers[int(mode/3)%len(signers)]
		var req []byte
		switch {
		case mode%3 == 0 || !isWrite(op): // the bytes are the request
			req = data
		case mode%3 == 1: // signed by a registered twin
			req = rawSignedRequest(signer, signer, op, data)
		default: // claiming a registered twin's key, signed by another
			req = rawSignedRequest(attacker, signer, op, data)
		}
		before := recordSeqs(t, g)
		timeout := 5 * time.Second
		if op == OpEventsFetch {
			timeout = 100 * time.Millisecond // a fetch may be held that long
		}
		hctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := g.svc.handle(hctx, hs[op], op, req)
		cancel()
		// (A slow machine may time out: that is no answer to the input.)
		if err != nil && codeOf(err) == "internal" && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
			t.Fatalf("%s (mode %d): internal error: %v", op, mode%3, err)
		}
		if mode%3 == 1 && isWrite(op) {
			return
		}
		if after := recordSeqs(t, g); !maps.Equal(after, before) {
			t.Fatalf("%s (mode %d, error %v) changed records: streams %v, were %v", op, mode%3, err, after, before)
		}
	})
}

// rawSignedRequest writes a request by hand (the payload bytes as they
// are, valid JSON or not) that claims claimed's key, signed by signer.
func rawSignedRequest(signer, claimed identity.Key, op string, payload []byte) []byte {
	if len(payload) == 0 {
		payload = []byte("null")
	}
	r := signedRequest{Op: op, Key: claimed.PublicHex(), Timestamp: time.Now().UnixNano(), Payload: payload}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	r.Nonce = hex.EncodeToString(nonce)
	r.Signature = hex.EncodeToString(signer.Sign(r.signingBytes()))
	return fmt.Appendf(nil, `{"op":%q,"key":%q,"timestamp":%d,"nonce":%q,"payload":%s,"signature":%q}`,
		r.Op, r.Key, r.Timestamp, r.Nonce, payload, r.Signature)
}

// recordSeqs returns the last sequence of each bucket's stream and of the
// events stream: any write moves one.
func recordSeqs(t *testing.T, g *grid) map[string]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string]uint64{}
	for _, name := range []string{"KV_" + bucketTwins, "KV_" + bucketFarms, "KV_" + bucketNodes, "KV_" + bucketContracts,
		"KV_" + bucketIndex, "KV_" + bucketNonces, "KV_" + bucketAccounts, "KV_" + bucketLedger, "KV_" + bucketBilling,
		"KV_" + bucketBills, EventsStream} {
		st, err := g.svc.st.js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, err := st.Info(ctx)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		out[name] = info.State.LastSeq
	}
	return out
}

// FuzzParseFarmToken: any text either fails to parse or is the one
// encoding of the token it parses to, whose signature only its signer's
// key verifies.
func FuzzParseFarmToken(f *testing.F) {
	k, err := identity.FromSeed(make([]byte, identity.SeedSize))
	if err != nil {
		f.Fatal(err)
	}
	// Made the same in every fuzzing process (NewFarmToken's id is
	// random): the one token that verifies.
	tok := FarmToken{FarmID: 3, Expires: time.Unix(2e9, 0).UTC(), ID: [16]byte{1, 2, 3}}
	copy(tok.Signature[:], k.Sign(tok.signingBytes()))
	f.Add(tok.String())
	f.Add(FarmTokenPrefix)
	f.Add("zft1_" + strings.Repeat("_", 123))
	other, _ := identity.FromSeed(append(make([]byte, identity.SeedSize-1), 1))
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFarmToken(s)
		if err != nil {
			return
		}
		if got.String() != s {
			t.Fatalf("parsed %q, encodes as %q", s, got.String())
		}
		if got.FarmID == 0 {
			t.Fatal("parsed a token of farm 0")
		}
		if got != tok && got.Verify(k.Public(), time.Unix(0, 0)) == nil {
			t.Fatalf("forged token %q verifies", s)
		}
		if got.Verify(other.Public(), time.Unix(0, 0)) == nil {
			t.Fatalf("token %q verifies with a key that never signed", s)
		}
	})
}
