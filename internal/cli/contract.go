package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/zos-go/zos/internal/registry"
)

func contractCommand() *command {
	return &command{name: "contract", summary: "your contracts", subs: []*command{
		{name: "list", usage: "[--node ID] [--state created|canceled] [--all] [--grid URL] [--key FILE] [--json]", summary: "list your contracts (--all: everyone's)", run: contractList},
		{name: "show", usage: "ID [--grid URL] [--json]", summary: "show a contract", run: contractShow},
		{name: "cancel", usage: "ID [--grid URL] [--key FILE]", summary: "cancel a contract of yours (the node removes its deployment)", run: contractCancel},
		contractBillsCommand(),
	}}
}

func contractList(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("contract list", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	node := fs.Uint("node", 0, "only contracts on this node")
	state := fs.String("state", "", "only contracts in this state: created or canceled")
	all := fs.Bool("all", false, "every twin's contracts, not only yours")
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	if *state != "" && *state != registry.StateCreated && *state != registry.StateCanceled {
		return usageError("--state %q: want created or canceled", *state)
	}
	return withGrid(ctx, o, !*all, func(ctx context.Context, s *session) error {
		filter := registry.ContractFilter{NodeID: uint32(*node), State: *state}
		if !*all {
			t, err := s.reg.TwinByKey(ctx, s.key.Public())
			if err != nil {
				return fmt.Errorf("reading your twin: %w", explain(err))
			}
			filter.TwinID = t.ID
		}
		cs, err := s.reg.Contracts(ctx, filter)
		if err != nil {
			return fmt.Errorf("listing contracts: %w", explain(err))
		}
		if *o.json {
			if cs == nil {
				cs = []registry.Contract{}
			}
			return printJSON(env, cs)
		}
		var rows [][]string
		for _, c := range cs {
			what := c.DeploymentHash
			switch c.Type {
			case registry.TypeName:
				what = c.Name
			case registry.TypeRent:
				what = "whole node"
			}
			node := ""
			if c.NodeID != 0 {
				node = strconv.Itoa(int(c.NodeID))
			}
			ips := ""
			for i, ip := range c.PublicIPs {
				if i > 0 {
					ips += ","
				}
				ips += ip.IP
			}
			rows = append(rows, []string{strconv.FormatUint(c.ID, 10), c.Type, c.State, strconv.Itoa(int(c.TwinID)), node, what, ips})
		}
		return table(env.Stdout, "ID\tTYPE\tSTATE\tTWIN\tNODE\tHASH/NAME\tPUBLIC IPS", rows)
	})
}

func contractShow(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("contract show", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "contract id", 64)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
		c, err := s.reg.Contract(ctx, id)
		if err != nil {
			return fmt.Errorf("reading contract %d: %w", id, explain(err))
		}
		// The JSON form is also the readable one: contracts are small.
		return printJSON(env, c)
	})
}

func contractCancel(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("contract cancel", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "contract id", 64)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		if err := s.reg.CancelContract(ctx, id); err != nil {
			return fmt.Errorf("canceling contract %d: %w", id, explain(err))
		}
		if *o.json {
			return printJSON(env, map[string]any{"contract_id": id, "state": registry.StateCanceled})
		}
		fmt.Fprintf(env.Stdout, "contract %d canceled\n", id)
		return nil
	})
}
