package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// DefaultGrid is the grid zosctl talks to without --grid: a zgrid on this
// machine.
const DefaultGrid = "nats://127.0.0.1:4222"

// gridFlags are the flags of every command that talks to the grid.
type gridFlags struct {
	grid *string
	key  *string
	json *bool
}

func addGridFlags(fs *flag.FlagSet, env *Env) gridFlags {
	return gridFlags{
		grid: fs.String("grid", envOr(env, "ZOS_GRID", DefaultGrid), "NATS URL(s) of the grid ($ZOS_GRID)"),
		key:  keyFlag(fs, env),
		json: fs.Bool("json", false, "print JSON"),
	}
}

func envOr(env *Env, k, def string) string {
	if v := env.getenv(k); v != "" {
		return v
	}
	return def
}

// session is a connection to the grid as the user's twin.
type session struct {
	nc   *nats.Conn
	key  identity.Key
	reg  *registry.Client
	twin registry.Twin
	rmb  *rmb.Client
}

// openSession connects with the user's key. With needTwin it also finds
// the key's twin (and sets up the relay client); without, only twin
// creation is possible for an unregistered key.
func openSession(ctx context.Context, f gridFlags, needTwin bool) (*session, error) {
	key, err := loadKey(*f.key)
	if err != nil {
		return nil, err
	}
	nc, err := rmb.Connect(*f.grid, key, nats.Name("zosctl"))
	if err != nil {
		return nil, fmt.Errorf("connecting to the grid at %s: %w", *f.grid, err)
	}
	s := &session{nc: nc, key: key, reg: registry.NewClient(nc, key)}
	if !needTwin {
		return s, nil
	}
	s.twin, err = s.reg.TwinByKey(ctx, key.Public())
	if err != nil {
		nc.Close()
		if errors.Is(err, registry.ErrNotFound) {
			return nil, fmt.Errorf("this key has no twin yet: create one with `zosctl twin create`")
		}
		return nil, fmt.Errorf("finding the twin of this key (create one with `zosctl twin create`): %w", err)
	}
	s.rmb = rmb.NewClient(nc, s.twin.ID, key, s.reg)
	return s, nil
}

func (s *session) Close() { s.nc.Close() }

// callNodeOnce opens a session as the key's twin, sends cmd to node over the
// relay and closes the session.
func callNodeOnce(ctx context.Context, f gridFlags, node uint32, cmd string, req, resp any) error {
	s, err := openSession(ctx, f, true)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.callNode(ctx, node, cmd, req, resp)
}

// callNode sends a command to a node (by node id) over the relay.
func (s *session) callNode(ctx context.Context, node uint32, cmd string, req, resp any) error {
	n, err := s.reg.Node(ctx, node)
	if err != nil {
		return fmt.Errorf("getting node %d: %w", node, err)
	}
	if err := s.rmb.Call(ctx, n.TwinID, cmd, req, resp); err != nil {
		return fmt.Errorf("node %d: %s: %w", node, cmd, err)
	}
	return nil
}
