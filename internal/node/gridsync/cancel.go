package gridsync

import (
	"context"
	"errors"
	"fmt"

	"github.com/zos-go/zos/internal/registry"
)

// ErrNoCancelProof is returned for a contract said to be canceled whose
// record does not carry its owner's signed cancellation.
var ErrNoCancelProof = errors.New("no cancellation signed by the owner")

// VerifyCancel checks that the owner of c signed its cancellation: the
// contract is canceled, its proof is a cancel request for this contract,
// and the signature is the owner's key. A canceled state over the proof of
// a create or an update is refused: only the owner takes a deployment
// down, never the registry alone.
func (s *Sync) VerifyCancel(ctx context.Context, c registry.Contract) error {
	if c.State != registry.StateCanceled {
		return fmt.Errorf("%w: contract %d is %s", ErrNoCancelProof, c.ID, c.State)
	}
	if c.Proof == nil || c.Proof.Op != registry.OpContractCancel {
		op := "none"
		if c.Proof != nil {
			op = c.Proof.Op
		}
		return fmt.Errorf("%w: contract %d carries the proof of %s", ErrNoCancelProof, c.ID, op)
	}
	key, err := s.reg.TwinKey(ctx, c.TwinID)
	if err != nil {
		return fmt.Errorf("reading the key of twin %d: %w", c.TwinID, err)
	}
	return registry.VerifyContract(c, key)
}
