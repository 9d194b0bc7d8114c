package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
)

// Helpers of the grid commands (twin, farm, node, contract, name); the
// shared flags and the session are in session.go.

// gridTimeout bounds one grid command.
const gridTimeout = 30 * time.Second

// connectGrid opens a session as the user's key. Without needKey a missing
// key file connects anonymously, which grids without authentication accept
// for reads.
func connectGrid(ctx context.Context, f gridFlags, needKey bool) (*session, error) {
	if f.clockErr != nil {
		return nil, f.clockErr
	}
	_, statErr := os.Stat(*f.key)
	if needKey || statErr == nil {
		s, err := openSession(ctx, f, false)
		if !errors.Is(err, nats.ErrNkeysNotSupported) {
			return s, err
		}
		// A NATS server without authentication (a plain nats-server
		// under zgrid --nats): connect without the key, sign with it.
		key, kerr := loadKey(*f.key)
		if kerr != nil {
			return nil, kerr
		}
		nc, err := nats.Connect(*f.grid, connOptions()...)
		if err != nil {
			return nil, fmt.Errorf("connecting to the grid at %s: %w", *f.grid, err)
		}
		return &session{nc: nc, key: key, reg: f.registryClient(nc, key)}, nil
	}
	nc, err := nats.Connect(*f.grid, connOptions()...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("connecting to the grid at %s: %w (the grid admits keys only: `zosctl key new`, `zosctl twin create`)", *f.grid, err)
		}
		return nil, fmt.Errorf("connecting to the grid at %s: %w", *f.grid, err)
	}
	return &session{nc: nc, reg: f.registryClient(nc, identity.Key{})}, nil
}

// explain adds a hint to errors a user can act on.
func explain(err error) error {
	switch {
	case errors.Is(err, registry.ErrNoTwin):
		return fmt.Errorf("%w\n(create your twin with `zosctl twin create`)", err)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w\n(is zgrid running, and does your key have a twin? `zosctl twin create`)", err)
	}
	return err
}

// table writes aligned columns.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		for i, c := range r {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// parseID parses a positional id argument.
func parseID(what, s string, bits int) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, bits)
	if err != nil || v == 0 {
		return 0, usageError("%s %q is not a positive number", what, s)
	}
	return v, nil
}

// oneIDArg parses args with fs and returns the single positional id.
func oneIDArg(fs *flag.FlagSet, env *Env, args []string, what string, bits int) (uint64, error) {
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return 0, err
	}
	if len(pos) != 1 {
		return 0, usageError("want one %s", what)
	}
	return parseID(what, pos[0], bits)
}

// withGrid connects as connectGrid does, runs fn with ctx bounded by
// gridTimeout, and closes the session: the preamble of the grid commands.
func withGrid(ctx context.Context, f gridFlags, needKey bool, fn func(ctx context.Context, s *session) error) error {
	s, err := connectGrid(ctx, f, needKey)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, gridTimeout)
	defer cancel()
	return fn(ctx, s)
}
