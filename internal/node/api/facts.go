package api

import (
	"context"
	"errors"

	"github.com/zos-go/zos/internal/nodeapi"
)

// Facts answers the zos.system facts commands; the node implements it.
type Facts interface {
	DMI() (nodeapi.DMI, error)
	// Hypervisor is the hypervisor's name, "" on bare metal.
	Hypervisor() string
	// Features are the workload types and network capabilities the node
	// provisions.
	Features() []string
}

// ErrNoFacts is returned when the node answers no facts.
var ErrNoFacts = errors.New("this node does not report machine facts")

func (a *API) facts() (Facts, error) {
	f, ok := a.node.(Facts)
	if !ok {
		return nil, ErrNoFacts
	}
	return f, nil
}

func (a *API) dmi(context.Context, uint32, []byte) (any, error) {
	f, err := a.facts()
	if err != nil {
		return nil, err
	}
	return f.DMI()
}

func (a *API) hypervisor(context.Context, uint32, []byte) (any, error) {
	f, err := a.facts()
	if err != nil {
		return nil, err
	}
	return f.Hypervisor(), nil
}

func (a *API) nodeFeatures(context.Context, uint32, []byte) (any, error) {
	f, err := a.facts()
	if err != nil {
		return nil, err
	}
	feat := f.Features()
	if feat == nil {
		feat = []string{}
	}
	return feat, nil
}
