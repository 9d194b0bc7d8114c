package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/zos-go/zos/internal/registry"
)

// farmPowerCommands are `zosctl farm policy`.
func farmPowerCommands() []*command {
	return []*command{
		{name: "policy", usage: "FARM [--min-awake N] [--min-free-cru N] [--min-free-mru SIZE] [--min-free-sru SIZE] [--min-free-hru SIZE] | FARM --clear [--grid URL] [--key FILE] [--json]",
			summary: "keep at least N nodes / this free capacity of your farm awake: the grid puts idle nodes beyond it to standby and wakes one (Wake-on-LAN) when short", run: farmPolicy},
	}
}

// nodePowerCommands are `zosctl node standby|wake`.
func nodePowerCommands() []*command {
	return []*command{
		{name: "standby", usage: "ID [--grid URL] [--key FILE]", summary: "put a node of your farm to standby (it refuses while it has workloads or updates)", run: nodeStandby},
		{name: "wake", usage: "ID [--grid URL] [--key FILE] [--json]", summary: "wake a node of your farm: an awake node of the farm sends its Wake-on-LAN packet", run: nodeWake},
	}
}

func farmPolicy(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm policy", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	minAwake := fs.Uint("min-awake", 0, "nodes kept awake")
	cru := fs.Uint64("min-free-cru", 0, "free cores kept awake")
	mru := fs.String("min-free-mru", "", "free memory kept awake (512M, 4G)")
	sru := fs.String("min-free-sru", "", "free SSD kept awake")
	hru := fs.String("min-free-hru", "", "free HDD kept awake")
	clear := fs.Bool("clear", false, "remove the policy: the grid no longer puts nodes to standby or wakes them")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want one farm id")
	}
	farm, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil || farm == 0 {
		return usageError("farm id %q is not a number above 0", pos[0])
	}
	if *minAwake > 1<<32-1 {
		return usageError("--min-awake %d out of range", *minAwake)
	}
	var policy *registry.PowerPolicy
	if !*clear {
		p := registry.PowerPolicy{MinAwake: uint32(*minAwake), MinFree: registry.Resources{CRU: *cru}}
		for _, s := range []struct {
			name string
			v    string
			out  *uint64
		}{{"min-free-mru", *mru, &p.MinFree.MRU}, {"min-free-sru", *sru, &p.MinFree.SRU}, {"min-free-hru", *hru, &p.MinFree.HRU}} {
			if s.v == "" {
				continue
			}
			if *s.out, err = parseSizeFlag(s.name, s.v); err != nil {
				return usageError("%v", err)
			}
		}
		if p.MinAwake == 0 && p.MinFree == (registry.Resources{}) {
			return usageError("a policy keeps something awake: give --min-awake or a --min-free-*, or --clear")
		}
		policy = &p
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		f, err := s.reg.SetFarmPowerPolicy(ctx, uint32(farm), policy)
		if err != nil {
			return fmt.Errorf("setting the power policy of farm %d: %w", farm, explain(err))
		}
		if *o.json {
			return printJSON(env, f)
		}
		if f.PowerPolicy == nil {
			fmt.Fprintf(env.Stdout, "farm %d: no power policy\n", f.ID)
			return nil
		}
		p := f.PowerPolicy
		fmt.Fprintf(env.Stdout, "farm %d keeps awake: %d nodes, free cru %d mru %s GiB sru %s GiB hru %s GiB\n",
			f.ID, p.MinAwake, p.MinFree.CRU, gib(p.MinFree.MRU), gib(p.MinFree.SRU), gib(p.MinFree.HRU))
		return nil
	})
}

func nodeStandby(ctx context.Context, env *Env, args []string) error {
	return powerTargetCmd(ctx, env, "node standby", registry.PowerDown, args)
}

func nodeWake(ctx context.Context, env *Env, args []string) error {
	return powerTargetCmd(ctx, env, "node wake", registry.PowerUp, args)
}

// powerTargetCmd is node standby and node wake: one node id.
func powerTargetCmd(ctx context.Context, env *Env, name, target string, args []string) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "node id", 32)
	if err != nil {
		return err
	}
	return setPowerTarget(ctx, env, o, uint32(id), target)
}

// setPowerTarget sets a node's power target and says what follows.
func setPowerTarget(ctx context.Context, env *Env, o gridFlags, id uint32, target string) error {
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		res, err := s.reg.PowerTarget(ctx, id, target)
		if err != nil {
			return fmt.Errorf("setting the power target of node %d: %w", id, explain(err))
		}
		if *o.json {
			return printJSON(env, res)
		}
		switch {
		case target == registry.PowerDown:
			fmt.Fprintf(env.Stdout, "node %d asked to go to standby (zosctl node show %d: power down once it went, power_refused if it refuses)\n", id, id)
		case res.WakeVia != 0:
			fmt.Fprintf(env.Stdout, "node %d: node %d of its farm sends its Wake-on-LAN packet\n", id, res.WakeVia)
		case res.Note != "":
			fmt.Fprintf(env.Stdout, "node %d: power target up; %s\n", id, res.Note)
		default:
			fmt.Fprintf(env.Stdout, "node %d: power target up (it is not in standby)\n", id)
		}
		return nil
	})
}

// powerLine is a node's power state, the farmer's target and a refusal,
// as node show prints them.
func powerLine(n registry.Node) string {
	state := n.Power
	if state == "" {
		state = registry.PowerUp
	}
	line := state
	if n.PowerTarget != "" {
		line += " (target " + n.PowerTarget + ")"
	}
	if n.PowerRefused != "" {
		line += ", standby refused: " + n.PowerRefused
	}
	return line
}
