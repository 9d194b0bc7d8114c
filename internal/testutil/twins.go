package testutil

import (
	"context"
	"crypto/ed25519"
	"fmt"
)

// TwinKeys is a registry of twins' public keys held in memory, for the
// servers (the flist hub, the relay) that look up the key of a twin who
// signed a request.
type TwinKeys map[uint32]ed25519.PublicKey

// TwinKey returns twin's key, or an error if the twin is unknown.
func (k TwinKeys) TwinKey(_ context.Context, twin uint32) (ed25519.PublicKey, error) {
	if pub, ok := k[twin]; ok {
		return pub, nil
	}
	return nil, fmt.Errorf("no such twin %d", twin)
}
