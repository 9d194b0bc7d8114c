package registry

import (
	"context"
	"crypto/ed25519"

	"github.com/zos-go/zos/internal/identity"
)

// TwinKey returns the ed25519 key of a twin, so that the client serves as
// the relay's rmb.TwinResolver.
func (c *Client) TwinKey(ctx context.Context, twin uint32) (ed25519.PublicKey, error) {
	t, err := c.Twin(ctx, twin)
	if err != nil {
		return nil, err
	}
	return identity.ParsePublic(t.PublicKey)
}
