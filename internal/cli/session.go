package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"time"

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
	// clock times what zosctl signs: the system clock, moved by
	// $ZOSCTL_CLOCK_OFFSET (a Go duration, e.g. 10m or -90s). The offset
	// is for tests of clock skew (a static binary reads the clock through
	// the vDSO, out of reach of faking tools); clockErr is a bad offset.
	clock    func() time.Time
	clockErr error
}

// ClockOffsetEnv names the environment variable that moves zosctl's clock
// (tests of clock skew).
const ClockOffsetEnv = "ZOSCTL_CLOCK_OFFSET"

func addGridFlags(fs *flag.FlagSet, env *Env) gridFlags {
	f := gridFlags{
		grid:  fs.String("grid", envOr(env, "ZOS_GRID", DefaultGrid), "NATS URL(s) of the grid ($ZOS_GRID)"),
		key:   keyFlag(fs, env),
		json:  fs.Bool("json", false, "print JSON"),
		clock: time.Now,
	}
	if v := env.getenv(ClockOffsetEnv); v != "" {
		off, err := time.ParseDuration(v)
		if err != nil {
			f.clockErr = fmt.Errorf("$%s=%q: want a duration such as 10m or -90s", ClockOffsetEnv, v)
		}
		f.clock = func() time.Time { return time.Now().Add(off) }
	}
	return f
}

// connOptions are the NATS options of zosctl's connections: reconnect
// for as long as the command runs (its deadlines bound the wait), so a
// grid restarted under a waiting command is found again.
func connOptions() []nats.Option {
	return []nats.Option{nats.Name("zosctl"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
}

// registryClient is the registry client of a session, signing with key.
func (f gridFlags) registryClient(nc *nats.Conn, key identity.Key) *registry.Client {
	return registry.NewClient(nc, key, registry.WithClock(f.clock))
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

	mu        sync.Mutex        // guards nodeTwins
	nodeTwins map[uint32]uint32 // node id to its twin, as the registry said
}

// openSession connects with the user's key. With needTwin it also finds
// the key's twin (and sets up the relay client); without, only twin
// creation is possible for an unregistered key.
func openSession(ctx context.Context, f gridFlags, needTwin bool) (*session, error) {
	if f.clockErr != nil {
		return nil, f.clockErr
	}
	key, err := loadKey(*f.key)
	if err != nil {
		return nil, err
	}
	nc, err := rmb.Connect(*f.grid, key, connOptions()...)
	if err != nil {
		return nil, fmt.Errorf("connecting to the grid at %s: %w", *f.grid, err)
	}
	s := &session{nc: nc, key: key, reg: f.registryClient(nc, key)}
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
	s.rmb = rmb.NewClient(nc, s.twin.ID, key, s.reg, rmb.WithClock(f.clock), rmb.WithCallTimeout(nodeCallTimeout))
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
	twin, err := s.nodeTwin(ctx, node)
	if err != nil {
		return err
	}
	if err := s.rmb.Call(ctx, twin, cmd, req, resp); err != nil {
		return fmt.Errorf("node %d: %s: %w", node, cmd, err)
	}
	return nil
}

// nodeTwin returns the twin of a node, asking the registry once per
// session (a node keeps its twin: its key is its identity).
func (s *session) nodeTwin(ctx context.Context, node uint32) (uint32, error) {
	s.mu.Lock()
	twin, ok := s.nodeTwins[node]
	s.mu.Unlock()
	if ok {
		return twin, nil
	}
	n, err := s.reg.Node(ctx, node)
	if err != nil {
		return 0, fmt.Errorf("getting node %d: %w", node, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nodeTwins == nil {
		s.nodeTwins = map[uint32]uint32{}
	}
	s.nodeTwins[node] = n.TwinID
	return n.TwinID, nil
}
