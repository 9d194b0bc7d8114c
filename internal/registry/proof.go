package registry

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// VerifyContract checks a contract against its owner's public key without
// trusting the registry: the proof must be a request signed by owner, and
// what it asked must be what the contract says (for a node contract: the
// node and the deployment hash; for a name: the name; a cancel: this
// contract). Nodes call it before acting on a contract they read.
func VerifyContract(c Contract, owner ed25519.PublicKey) error {
	p := c.Proof
	if p == nil {
		return fmt.Errorf("%w: contract %d carries no proof", ErrBadSignature, c.ID)
	}
	if p.Key != hex.EncodeToString(owner) {
		return fmt.Errorf("%w: contract %d was signed by %s, not its owner", ErrBadSignature, c.ID, p.Key)
	}
	if _, err := p.verify(); err != nil {
		return fmt.Errorf("contract %d: %w", c.ID, err)
	}
	mismatch := func(what string) error {
		return fmt.Errorf("%w: contract %d: signed %s differs from the record", ErrBadSignature, c.ID, what)
	}
	switch p.Op {
	case OpContractCreate:
		var r contractCreateReq
		if err := json.Unmarshal(p.Payload, &r); err != nil {
			return mismatch("request")
		}
		if c.Type != TypeNode || r.NodeID != c.NodeID || r.Hash != c.DeploymentHash || r.PublicIPs != c.PublicIPsCount {
			return mismatch("node contract")
		}
	case OpContractUpdate:
		var r contractUpdateReq
		if err := json.Unmarshal(p.Payload, &r); err != nil || r.ID != c.ID || r.Hash != c.DeploymentHash {
			return mismatch("update")
		}
	case OpContractCancel:
		var r contractIDReq
		if err := json.Unmarshal(p.Payload, &r); err != nil || r.ID != c.ID || c.State != StateCanceled {
			return mismatch("cancel")
		}
	case OpNameCreate:
		var r nameCreateReq
		if err := json.Unmarshal(p.Payload, &r); err != nil || c.Type != TypeName || r.Name != c.Name {
			return mismatch("name")
		}
	case OpRentCreate:
		var r rentCreateReq
		if err := json.Unmarshal(p.Payload, &r); err != nil || c.Type != TypeRent || r.NodeID != c.NodeID {
			return mismatch("rent")
		}
	default:
		return mismatch("operation " + p.Op)
	}
	return nil
}
