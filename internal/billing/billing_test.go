package billing

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestStateChangeSignVerify(t *testing.T) {
	_, grid, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	c, err := Sign(StateChange{ContractID: 7, NodeID: 3, TwinID: 9, State: StateGrace, Seq: 1, At: 1700000000}, grid)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(c, grid.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("a change the grid signed: %v", err)
	}
	tampered := []func(*StateChange){
		func(c *StateChange) { c.State = StateOutOfFunds },
		func(c *StateChange) { c.ContractID = 8 },
		func(c *StateChange) { c.NodeID = 4 },
		func(c *StateChange) { c.Seq = 2 },
		func(c *StateChange) { c.At++ },
		func(c *StateChange) { c.Signature = c.Signature[:10] },
	}
	for i, f := range tampered {
		d := c
		f(&d)
		if err := Verify(d, grid.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tampered change %d: got %v, want ErrBadSignature", i, err)
		}
	}
	forged, err := Sign(StateChange{ContractID: 7, State: StateOutOfFunds, Seq: 2, At: 1700000001}, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(forged, grid.Public().(ed25519.PublicKey)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("a change signed by another key: got %v, want ErrBadSignature", err)
	}
	if _, err := Sign(StateChange{ContractID: 7, State: "free", Seq: 1, At: 1}, grid); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown state: got %v, want ErrInvalid", err)
	}
}

func TestUsageReportValidate(t *testing.T) {
	ok := UsageReport{NodeID: 1, ContractID: 2, Start: 100, End: 160, CRU: 1, MRU: 1 << 30}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid report: %v", err)
	}
	bad := map[string]func(*UsageReport){
		"no node":         func(r *UsageReport) { r.NodeID = 0 },
		"no contract":     func(r *UsageReport) { r.ContractID = 0 },
		"empty window":    func(r *UsageReport) { r.End = r.Start },
		"negative window": func(r *UsageReport) { r.End = r.Start - 1 },
		"long window":     func(r *UsageReport) { r.End = r.Start + MaxWindow + 1 },
		"huge memory":     func(r *UsageReport) { r.MRU = 1 << 60 },
		"huge traffic":    func(r *UsageReport) { r.NetBytes = 1<<63 + 1 },
	}
	for name, f := range bad {
		r := ok
		f(&r)
		if err := r.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
}
