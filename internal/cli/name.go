package cli

import (
	"context"
	"flag"
	"fmt"
)

func nameCommand() *command {
	return &command{name: "name", summary: "names for gateways", subs: []*command{
		{name: "reserve", usage: "NAME [--grid URL] [--key FILE] [--json]", summary: "reserve a name (a name contract)", run: nameReserve},
	}}
}

func nameReserve(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("name reserve", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want one name")
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		c, err := s.reg.CreateNameContract(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("reserving name %q: %w", pos[0], explain(err))
		}
		if *o.json {
			return printJSON(env, c)
		}
		fmt.Fprintf(env.Stdout, "name %q reserved by contract %d\n", c.Name, c.ID)
		return nil
	})
}
