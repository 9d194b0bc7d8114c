package api

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/zos-go/zos/internal/nodeapi"
)

type plainNode struct{ Node }

type planetaryNode struct {
	Node
	p   nodeapi.Planetary
	err error
}

func (n planetaryNode) Planetary() (nodeapi.Planetary, error) { return n.p, n.err }

// zos.network.planetary answers the node's overlay state, its error when
// it runs none, and ErrNoPlanetary for a node that cannot tell.
func TestPlanetary(t *testing.T) {
	state := nodeapi.Planetary{Running: true, Address: "200::1", Subnet: "300::/64",
		Peers: []nodeapi.PlanetaryPeer{{URI: "tcp://10.0.0.1:9651", Up: true, Address: "200::2"}}}
	none := fmt.Errorf("%w (no peers)", ErrNoPlanetary)
	for _, tt := range []struct {
		name string
		node Node
		want string
		err  error
	}{
		{"running", planetaryNode{p: state}, fmt.Sprint(state), nil},
		{"no overlay", planetaryNode{err: none}, "", ErrNoPlanetary},
		{"node without the command", plainNode{}, "", ErrNoPlanetary},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := &API{node: tt.node}
			got, err := a.planetary(context.Background(), 7, nil)
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err == nil && fmt.Sprint(got) != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}
