package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// farmOpsCommands are the farmer's commands on nodes, under zosctl node.
func farmOpsCommands() []*command {
	return []*command{
		{name: "public-config", usage: "ID (--ipv4 CIDR --gw4 IP [--ipv6 CIDR --gw6 IP] [--domain D] | --clear) [--grid URL] [--key FILE]",
			summary: "set or clear a node's public network config (its farmer)", run: nodePublicConfig},
		{name: "power", usage: "ID up|down [--grid URL] [--key FILE]", summary: "set the power target of a node (its farmer)", run: nodePower},
		{name: "rent", usage: "ID [--grid URL] [--key FILE] [--json]", summary: "rent a node: only your deployments go on it", run: nodeRent},
		{name: "unrent", usage: "ID [--grid URL] [--key FILE]", summary: "end your rent of a node (cancels the rent contract)", run: nodeUnrent},
	}
}

// oneNodeArg parses flags and the node id, the first positional
// argument, and returns the rest.
func oneNodeArg(fs *flag.FlagSet, env *Env, args []string, more int) (uint32, []string, error) {
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return 0, nil, err
	}
	if len(pos) != 1+more {
		return 0, nil, usageError("want a node id%s", strings.Repeat(" and one more argument", more))
	}
	id, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil || id == 0 {
		return 0, nil, usageError("node id %q is not a number above 0", pos[0])
	}
	return uint32(id), pos[1:], nil
}

func nodePublicConfig(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node public-config", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	var pc registry.PublicConfig
	fs.StringVar(&pc.IPv4, "ipv4", "", "public IPv4 address with prefix, e.g. 185.1.2.3/24")
	fs.StringVar(&pc.GW4, "gw4", "", "its gateway")
	fs.StringVar(&pc.IPv6, "ipv6", "", "public IPv6 address with prefix")
	fs.StringVar(&pc.GW6, "gw6", "", "its gateway")
	fs.StringVar(&pc.Domain, "domain", "", "domain the node's gateway serves names under")
	clearIt := fs.Bool("clear", false, "remove the node's public config")
	id, _, err := oneNodeArg(fs, env, args, 0)
	if err != nil {
		return err
	}
	set := pc != registry.PublicConfig{}
	if set == *clearIt {
		return usageError("want either --clear or the config (--ipv4 and --gw4 at least)")
	}
	var cfg *registry.PublicConfig
	if set {
		cfg = &pc
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		if err := s.reg.SetPublicConfig(ctx, id, cfg); err != nil {
			return fmt.Errorf("setting the public config of node %d: %w", id, explain(err))
		}
		if cfg == nil {
			fmt.Fprintf(env.Stdout, "node %d: public config cleared\n", id)
			return nil
		}
		fmt.Fprintf(env.Stdout, "node %d: public config ipv4 %s gw %s, ipv6 %s gw %s, domain %s\n", id, pc.IPv4, pc.GW4, pc.IPv6, pc.GW6, pc.Domain)
		return nil
	})
}

func nodePower(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node power", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, rest, err := oneNodeArg(fs, env, args, 1)
	if err != nil {
		return err
	}
	target := rest[0]
	if target != registry.PowerUp && target != registry.PowerDown {
		return usageError("power target %q: want up or down", target)
	}
	return setPowerTarget(ctx, env, o, id, target)
}

func nodeRent(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node rent", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, _, err := oneNodeArg(fs, env, args, 0)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		c, err := s.reg.CreateRentContract(ctx, id)
		if err != nil {
			return fmt.Errorf("renting node %d: %w", id, explain(err))
		}
		if *o.json {
			return printJSON(env, c)
		}
		fmt.Fprintf(env.Stdout, "node %d rented: rent contract %d\n", id, c.ID)
		return nil
	})
}

func nodeUnrent(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node unrent", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, _, err := oneNodeArg(fs, env, args, 0)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		twin, err := s.reg.TwinByKey(ctx, s.key.Public())
		if err != nil {
			return fmt.Errorf("reading your twin: %w", explain(err))
		}
		cs, err := s.reg.Contracts(ctx, registry.ContractFilter{NodeID: id, State: registry.StateCreated, Type: registry.TypeRent})
		if err != nil {
			return fmt.Errorf("listing the rent contracts of node %d: %w", id, explain(err))
		}
		for _, c := range cs {
			if c.Type != registry.TypeRent || c.NodeID != id || c.State != registry.StateCreated {
				continue
			}
			if c.TwinID != twin.ID {
				return fmt.Errorf("node %d is rented by twin %d, not by yours (%d)", id, c.TwinID, twin.ID)
			}
			if err := s.reg.CancelContract(ctx, c.ID); err != nil {
				return fmt.Errorf("canceling rent contract %d: %w", c.ID, explain(err))
			}
			fmt.Fprintf(env.Stdout, "node %d: rent contract %d canceled\n", id, c.ID)
			return nil
		}
		return fmt.Errorf("node %d is not rented", id)
	})
}

func farmRemoveIP(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm remove-ip", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	farm := fs.Uint("farm", 0, "farm id")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	id, err := requiredID("farm", *farm)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want --farm ID and one address")
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		if err := s.reg.RemoveFarmIP(ctx, id, pos[0]); err != nil {
			return fmt.Errorf("removing %s from farm %d: %w", pos[0], id, explain(err))
		}
		fmt.Fprintf(env.Stdout, "removed %s from farm %d\n", pos[0], id)
		return nil
	})
}

// farmNodes lists a farm's nodes with their state: status, power and its
// target, public config, rent and contracts.
func farmNodes(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm nodes", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	farm, err := oneIDArg(fs, env, args, "farm id", 32)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
		if _, err := s.reg.Farm(ctx, uint32(farm)); err != nil {
			return fmt.Errorf("reading farm %d: %w", farm, explain(err))
		}
		g, err := readGrid(ctx, s.reg)
		if err != nil {
			return err
		}
		q := nodeQuery{farms: []uint32{uint32(farm)}}
		views, _ := q.search(g.views(time.Now()))
		if *o.json {
			return printJSON(env, views)
		}
		var rows [][]string
		for _, v := range views {
			power, target := v.Power, v.PowerTarget
			if power == "" {
				power = registry.PowerUp
			}
			if target == "" {
				target = "-"
			}
			public := "-"
			if pc := v.PublicConfig; pc != nil {
				public = strings.TrimSpace(strings.Join([]string{pc.IPv4, pc.IPv6, pc.Domain}, " "))
			}
			rent := "-"
			if v.RentedBy != 0 {
				rent = "twin " + strconv.Itoa(int(v.RentedBy))
			}
			rows = append(rows, []string{strconv.Itoa(int(v.ID)), v.Status, power, target, strconv.Itoa(v.Contracts), rent, public, v.Version,
				time.Duration(v.Uptime * uint64(time.Second)).String()})
		}
		return table(env.Stdout, "NODE\tSTATUS\tPOWER\tTARGET\tCONTRACTS\tRENTED BY\tPUBLIC CONFIG\tVERSION\tUPTIME", rows)
	})
}
