package api

import (
	"context"
	"errors"

	"github.com/zos-go/zos/internal/nodeapi"
)

// PlanetaryState answers zos.network.planetary; the node implements it.
type PlanetaryState interface {
	// Planetary is the overlay's state, an error when the node runs none.
	Planetary() (nodeapi.Planetary, error)
}

// ErrNoPlanetary is returned when the node cannot report an overlay.
var ErrNoPlanetary = errors.New("this node runs no planetary overlay")

func (a *API) planetary(context.Context, uint32, []byte) (any, error) {
	p, ok := a.node.(PlanetaryState)
	if !ok {
		return nil, ErrNoPlanetary
	}
	return p.Planetary()
}
