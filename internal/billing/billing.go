// Package billing holds what the grid and the nodes say to each other about
// money: the usage a node reports for each contract, and the grid's signed
// word that a contract entered its grace period, was resumed, or ended out
// of funds. The registry keeps balances, ledgers and bills; the node pauses,
// resumes and removes workloads. Both sides read the wire types here, and
// the node checks every state change against the grid's billing key before
// acting on it, without trusting the registry that delivered it.
package billing

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Contract states a StateChange announces.
const (
	// StateGrace: the twin's balance cannot pay; the node pauses the
	// contract's workloads and keeps their capacity reserved.
	StateGrace = "grace_period"
	// StateActive: paid again; the node resumes the workloads.
	StateActive = "active"
	// StateOutOfFunds: the grace period ended; the contract is deleted and
	// the node deprovisions its workloads.
	StateOutOfFunds = "out_of_funds"
)

// ErrInvalid marks a malformed report or state change; ErrBadSignature one
// the grid's billing key did not sign.
var (
	ErrInvalid      = errors.New("invalid")
	ErrBadSignature = errors.New("bad signature")
)

// UsageReport is what a node reports of one contract over a window of time
// [Start, End) in unix seconds: the capacity reserved and the public IPs
// held during the whole window (a node starts a new window when they
// change), and the bytes its workloads sent and received in it. A node
// reports through a registry request signed by its own twin key; the
// registry accepts a report only from the contract's node and only for
// time after the contract's last reported window (no double counting; a gap
// is not billed).
type UsageReport struct {
	NodeID     uint32 `json:"node_id"`
	ContractID uint64 `json:"contract_id"`
	Start      int64  `json:"start"`
	End        int64  `json:"end"`
	CRU        uint64 `json:"cru"`
	MRU        uint64 `json:"mru"` // bytes
	SRU        uint64 `json:"sru"` // bytes
	HRU        uint64 `json:"hru"` // bytes
	PublicIPs  uint32 `json:"public_ips"`
	NetBytes   uint64 `json:"net_bytes"`
}

// MaxWindow bounds one report's window: a node reports at least daily.
const MaxWindow = 24 * 3600

// Validate checks a report's form (not who sent it).
func (r UsageReport) Validate() error {
	switch {
	case r.NodeID == 0 || r.ContractID == 0:
		return fmt.Errorf("%w: usage report needs node_id and contract_id", ErrInvalid)
	case r.Start <= 0 || r.End <= r.Start:
		return fmt.Errorf("%w: usage window [%d, %d) is empty or negative", ErrInvalid, r.Start, r.End)
	case r.End-r.Start > MaxWindow:
		return fmt.Errorf("%w: usage window of %d s is longer than %d s", ErrInvalid, r.End-r.Start, MaxWindow)
	case r.CRU > 1<<16 || r.MRU > 1<<53 || r.SRU > 1<<53 || r.HRU > 1<<53 || r.NetBytes > 1<<53 || r.PublicIPs > 1<<16:
		return fmt.Errorf("%w: usage figures out of range", ErrInvalid)
	}
	return nil
}

// StateChange is the grid's signed word about a contract's billing state.
// Seq increases with every change of one contract, so a node applies only
// the newest and a replayed older change is ignored.
type StateChange struct {
	ContractID uint64 `json:"contract_id"`
	NodeID     uint32 `json:"node_id"`
	TwinID     uint32 `json:"twin_id"`
	State      string `json:"state"`
	Seq        uint64 `json:"seq"`
	At         int64  `json:"at"`  // unix seconds
	Key        string `json:"key"` // hex ed25519 public key that signed
	Signature  string `json:"signature"`
}

// signingContext keeps these signatures apart from every other use of the
// billing key.
const signingContext = "\xffzos-billing-state-v1"

// signedBytes are the bytes the signature covers: the context and the
// change without its signature, as JSON.
func (c StateChange) signedBytes() []byte {
	c.Signature = ""
	b, _ := json.Marshal(c) // a struct of plain fields always encodes
	return append([]byte(signingContext), b...)
}

// Validate checks the change's form.
func (c StateChange) Validate() error {
	switch c.State {
	case StateGrace, StateActive, StateOutOfFunds:
	default:
		return fmt.Errorf("%w: contract state %q", ErrInvalid, c.State)
	}
	if c.ContractID == 0 || c.Seq == 0 || c.At <= 0 {
		return fmt.Errorf("%w: state change needs contract_id, seq and at", ErrInvalid)
	}
	return nil
}

// Sign fills Key and Signature with the grid's billing key.
func Sign(c StateChange, key ed25519.PrivateKey) (StateChange, error) {
	if err := c.Validate(); err != nil {
		return StateChange{}, err
	}
	c.Key = hex.EncodeToString(key.Public().(ed25519.PublicKey))
	c.Signature = hex.EncodeToString(ed25519.Sign(key, c.signedBytes()))
	return c, nil
}

// Verify checks that grid, the billing key the verifier trusts, signed c.
func Verify(c StateChange, grid ed25519.PublicKey) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if c.Key != hex.EncodeToString(grid) {
		return fmt.Errorf("%w: state change of contract %d signed by %q, not the grid's billing key", ErrBadSignature, c.ContractID, c.Key)
	}
	sig, err := hex.DecodeString(c.Signature)
	if err != nil || !ed25519.Verify(grid, c.signedBytes(), sig) {
		return fmt.Errorf("%w: state change of contract %d", ErrBadSignature, c.ContractID)
	}
	return nil
}
