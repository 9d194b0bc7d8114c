package cli

import (
	"context"
	"flag"
	"fmt"
)

func twinCommand() *command {
	return &command{name: "twin", summary: "your identity on the grid", subs: []*command{
		{name: "create", usage: "[--relay HINT] [--grid URL] [--key FILE] [--json]", summary: "create the twin of your key (or show the one it has)", run: twinCreate},
		{name: "show", usage: "[ID] [--grid URL] [--key FILE] [--json]", summary: "show a twin (default: yours)", run: twinShow},
	}}
}

func twinCreate(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("twin create", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	relay := fs.String("relay", "", "where the twin is reachable (empty: this grid)")
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		t, err := s.reg.CreateTwin(ctx, *relay)
		if err != nil {
			return fmt.Errorf("creating twin: %w", explain(err))
		}
		return printTwin(env, o, t.ID, t.PublicKey, t.Relay, t)
	})
}

func twinShow(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("twin show", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError("unexpected arguments %q", pos[1:])
	}
	return withGrid(ctx, o, len(pos) == 0, func(ctx context.Context, s *session) error {
		var tw = struct {
			ID        uint32 `json:"id"`
			PublicKey string `json:"public_key"`
			Relay     string `json:"relay,omitempty"`
		}{}
		if len(pos) == 0 {
			t, err := s.reg.TwinByKey(ctx, s.key.Public())
			if err != nil {
				return fmt.Errorf("reading your twin: %w", explain(err))
			}
			tw.ID, tw.PublicKey, tw.Relay = t.ID, t.PublicKey, t.Relay
		} else {
			id, err := parseID("twin id", pos[0], 32)
			if err != nil {
				return err
			}
			t, err := s.reg.Twin(ctx, uint32(id))
			if err != nil {
				return fmt.Errorf("reading twin %d: %w", id, err)
			}
			tw.ID, tw.PublicKey, tw.Relay = t.ID, t.PublicKey, t.Relay
		}
		return printTwin(env, o, tw.ID, tw.PublicKey, tw.Relay, tw)
	})
}

func printTwin(env *Env, o gridFlags, id uint32, pub, relay string, v any) error {
	if *o.json {
		return printJSON(env, v)
	}
	fmt.Fprintf(env.Stdout, "twin:   %d\npublic: %s\n", id, pub)
	if relay != "" {
		fmt.Fprintf(env.Stdout, "relay:  %s\n", relay)
	}
	return nil
}
