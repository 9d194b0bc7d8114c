package registry

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/identity"
)

// send sends raw bytes to op and returns the decoded error (nil on
// success).
func send(t *testing.T, g *grid, op string, data []byte) error {
	t.Helper()
	c := NewClient(g.nc, identity.Key{})
	return c.call(context.Background(), op, data, nil)
}

func TestRejectedWrites(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	farmer, farm, nodeUser, node := g.farmWithNode(t, "farm1", 1)
	other := g.user(t)
	owner := g.user(t)
	c, err := owner.c.CreateNodeContract(ctx, node.ID, "abcd", "", 0)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("forged", func(t *testing.T) {
		// Signed by other, claiming the farmer's key.
		b, err := newSignedRequest(other.key, OpFarmAddIP, farmAddIPReq{FarmID: farm.ID, IP: "10.0.0.5/24", Gateway: "10.0.0.1"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var r signedRequest
		_ = json.Unmarshal(b, &r)
		r.Key = farmer.key.PublicHex()
		b, _ = json.Marshal(r)
		wantErr(t, "forged key", send(t, g, OpFarmAddIP, b), ErrBadSignature)

		// Payload changed after signing.
		b, _ = newSignedRequest(farmer.key, OpFarmAddIP, farmAddIPReq{FarmID: farm.ID, IP: "10.0.0.5/24", Gateway: "10.0.0.1"}, time.Now())
		_ = json.Unmarshal(b, &r)
		r.Payload = json.RawMessage(strings.Replace(string(r.Payload), "10.0.0.5", "10.0.0.6", 1))
		b, _ = json.Marshal(r)
		wantErr(t, "tampered payload", send(t, g, OpFarmAddIP, b), ErrBadSignature)

		// A signature for one operation sent to another.
		b, _ = newSignedRequest(owner.key, OpContractUpdate, contractIDReq{ID: c.ID}, time.Now())
		wantErr(t, "wrong subject", send(t, g, OpContractCancel, b), ErrInvalid)
	})

	t.Run("replayed", func(t *testing.T) {
		b, err := newSignedRequest(nodeUser.key, OpNodeUptime, nodeUptimeReq{NodeID: node.ID, Uptime: 10}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := send(t, g, OpNodeUptime, b); err != nil {
			t.Fatalf("first send: %v", err)
		}
		wantErr(t, "replay", send(t, g, OpNodeUptime, b), ErrReplay)
	})

	t.Run("expired", func(t *testing.T) {
		for _, d := range []time.Duration{-2 * time.Minute, 2 * time.Minute} {
			b, _ := newSignedRequest(nodeUser.key, OpNodeUptime, nodeUptimeReq{NodeID: node.ID}, time.Now().Add(d))
			wantErr(t, "timestamp "+d.String(), send(t, g, OpNodeUptime, b), ErrExpired)
		}
	})

	t.Run("wrong owner", func(t *testing.T) {
		wantErr(t, "add ip to another's farm", other.c.AddFarmIP(ctx, farm.ID, "10.0.0.5/24", "10.0.0.1"), ErrUnauthorized)
		wantErr(t, "uptime of another's node", other.c.ReportUptime(ctx, node.ID, 1), ErrUnauthorized)
		wantErr(t, "used of another's node", other.c.ReportUsed(ctx, node.ID, map[uint64]Resources{c.ID: {}}), ErrUnauthorized)
		wantErr(t, "public config by non-farmer", nodeUser.c.SetPublicConfig(ctx, node.ID, nil), ErrUnauthorized)
		_, err := other.c.UpdateNodeContract(ctx, c.ID, "ee", "")
		wantErr(t, "update another's contract", err, ErrUnauthorized)
		wantErr(t, "cancel another's contract", other.c.CancelContract(ctx, c.ID), ErrUnauthorized)
		if got, _ := owner.c.Contract(ctx, c.ID); got.State != StateCreated || got.DeploymentHash != "abcd" {
			t.Fatalf("contract changed by refused writes: %+v", got)
		}
	})

	t.Run("no twin", func(t *testing.T) {
		k, _ := identity.Generate()
		_, err := NewClient(g.nc, k).CreateFarm(ctx, "x")
		wantErr(t, "farm without twin", err, ErrNoTwin)
	})

	t.Run("malformed", func(t *testing.T) {
		tests := []struct {
			name string
			op   string
			data string
			want error
		}{
			{"not json", OpFarmCreate, "{not json", ErrInvalid},
			{"empty", OpFarmCreate, "", ErrInvalid},
			{"bad key", OpFarmCreate, `{"op":"farm.create","key":"zz","timestamp":` + nowNanos() + `,"nonce":"00112233445566778899","payload":{}}`, ErrInvalid},
			{"bad read", OpNodeGet, `[1,2]`, ErrInvalid},
			{"too large", OpFarmCreate, strings.Repeat("x", MaxRequestSize+1), ErrTooLarge},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wantErr(t, tt.name, send(t, g, tt.op, []byte(tt.data)), tt.want)
			})
		}
		// Payload that is signed but not the right shape.
		b, _ := newSignedRequest(farmer.key, OpFarmAddIP, map[string]any{"farm_id": "one"}, time.Now())
		wantErr(t, "bad payload", send(t, g, OpFarmAddIP, b), ErrInvalid)
		wantErr(t, "bad cidr", farmer.c.AddFarmIP(ctx, farm.ID, "300.1.1.1/24", "1.1.1.1"), ErrInvalid)
		wantErr(t, "gw outside", farmer.c.AddFarmIP(ctx, farm.ID, "10.0.0.5/24", "10.1.0.1"), ErrInvalid)
		_, err := farmer.c.CreateNodeContract(ctx, node.ID, "not-hex", "", 0)
		wantErr(t, "bad hash", err, ErrInvalid)
		_, err = farmer.c.CreateNameContract(ctx, "Bad Name")
		wantErr(t, "bad name", err, ErrInvalid)
	})
}

func nowNanos() string {
	b, _ := json.Marshal(time.Now().UnixNano())
	return string(b)
}

func TestVerifyContract(t *testing.T) {
	g := newGrid(t)
	ctx := context.Background()
	_, _, _, node := g.farmWithNode(t, "farm1", 0)
	u := g.user(t)
	other := g.user(t)
	c, err := u.c.CreateNodeContract(ctx, node.ID, "abcd", "<meta & more>", 0)
	if err != nil {
		t.Fatal(err)
	}
	read := func(id uint64) Contract {
		t.Helper()
		c, err := other.c.Contract(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := VerifyContract(read(c.ID), u.key.Public()); err != nil {
		t.Fatalf("created: %v", err)
	}
	if _, err := u.c.UpdateNodeContract(ctx, c.ID, "ef01", "x"); err != nil {
		t.Fatal(err)
	}
	got := read(c.ID)
	if err := VerifyContract(got, u.key.Public()); err != nil {
		t.Fatalf("updated: %v", err)
	}
	wantErr(t, "other owner", VerifyContract(got, other.key.Public()), ErrBadSignature)
	forged := got
	forged.DeploymentHash = "ffff"
	wantErr(t, "forged hash", VerifyContract(forged, u.key.Public()), ErrBadSignature)
	forged = got
	forged.Proof = nil
	wantErr(t, "no proof", VerifyContract(forged, u.key.Public()), ErrBadSignature)
	if err := u.c.CancelContract(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := VerifyContract(read(c.ID), u.key.Public()); err != nil {
		t.Fatalf("canceled: %v", err)
	}
	n, err := u.c.CreateNameContract(ctx, "proof")
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyContract(read(n.ID), u.key.Public()); err != nil {
		t.Fatalf("name: %v", err)
	}

	// A payload that is not compact JSON is refused: its signature could
	// not be checked once stored.
	b, _ := newSignedRequest(u.key, OpNameCreate, nameCreateReq{Name: "spaced"}, time.Now())
	var r signedRequest
	_ = json.Unmarshal(b, &r)
	r.Payload = json.RawMessage(`{ "name": "spaced" }`)
	r.Signature = hex.EncodeToString(u.key.Sign(r.signingBytes()))
	// Written by hand: json.Marshal would compact the payload.
	b = fmt.Appendf(nil, `{"op":%q,"key":%q,"timestamp":%d,"nonce":%q,"payload":%s,"signature":%q}`,
		r.Op, r.Key, r.Timestamp, r.Nonce, r.Payload, r.Signature)
	wantErr(t, "spaced payload", send(t, g, OpNameCreate, b), ErrInvalid)
}
