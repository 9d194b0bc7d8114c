package cli

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
)

// nodeFactsCommands are the node's machine facts (asked of the node) and
// the farmer's location of a node (written to the registry).
func nodeFactsCommands() []*command {
	return []*command{
		{name: "facts", usage: "ID [--dmi] [--json]", summary: "the node's hypervisor, features and firmware facts (zos.system.*)", run: nodeFacts},
		{name: "location", usage: "ID COUNTRY[,CITY] | ID --clear", summary: "set (as its farmer) where a node stands; --clear lets the node's own count", run: nodeLocation},
	}
}

// nodeFactsView is what `node facts` prints.
type nodeFactsView struct {
	Hypervisor string       `json:"hypervisor"`
	Features   []string     `json:"features"`
	DMI        *nodeapi.DMI `json:"dmi,omitempty"`
	DMIError   string       `json:"dmi_error,omitempty"`
}

func nodeFacts(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node facts", flag.ContinueOnError)
	f := addGridFlags(fs, env)
	full := fs.Bool("dmi", false, "print every DMI section and property")
	id, err := oneIDArg(fs, env, args, "node id", 32)
	if err != nil {
		return err
	}
	s, err := openSession(ctx, f, true)
	if err != nil {
		return err
	}
	defer s.Close()
	var v nodeFactsView
	if err := s.callNode(ctx, uint32(id), nodeapi.CmdHypervisor, nil, &v.Hypervisor); err != nil {
		return err
	}
	if err := s.callNode(ctx, uint32(id), nodeapi.CmdNodeFeatures, nil, &v.Features); err != nil {
		return err
	}
	// A machine without DMI (some VMs, sandboxes) still has the rest.
	var d nodeapi.DMI
	if err := s.callNode(ctx, uint32(id), nodeapi.CmdDMI, nil, &d); err != nil {
		v.DMIError = err.Error()
	} else {
		v.DMI = &d
	}
	if *f.json {
		return printJSON(env, v)
	}
	hv := v.Hypervisor
	if hv == "" {
		hv = "none (bare metal)"
	}
	fmt.Fprintf(env.Stdout, "hypervisor: %s\nfeatures:   %s\n", hv, strings.Join(v.Features, ", "))
	if v.DMI == nil {
		fmt.Fprintf(env.Stdout, "dmi:        %s\n", v.DMIError)
		return nil
	}
	fmt.Fprintf(env.Stdout, "dmi:        %s\n", v.DMI.Tooling.Aggregator)
	for _, sec := range v.DMI.Sections {
		for _, sub := range sec.SubSections {
			if !*full && sec.Type > 3 {
				continue
			}
			fmt.Fprintf(env.Stdout, "  %s\n", sub.Title)
			for _, k := range slices.Sorted(maps.Keys(sub.Properties)) {
				fmt.Fprintf(env.Stdout, "    %s: %s\n", k, sub.Properties[k].Val)
			}
		}
	}
	return nil
}

func nodeLocation(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node location", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	clear := fs.Bool("clear", false, "clear the farmer's location: the node's own counts again from its next registration")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if (*clear && len(pos) != 1) || (!*clear && len(pos) != 2) {
		return usageError("want ID COUNTRY[,CITY], or ID --clear")
	}
	id, err := parseID("node id", pos[0], 32)
	if err != nil {
		return err
	}
	var loc *registry.Location
	if !*clear {
		l, err := registry.ParseLocation(pos[1])
		if err != nil {
			return usageError("%v", err)
		}
		if l.Country == "" {
			return usageError("want COUNTRY[,CITY], got %q", pos[1])
		}
		loc = &l
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		if err := s.reg.SetLocation(ctx, uint32(id), loc); err != nil {
			return fmt.Errorf("setting the location of node %d: %w", id, explain(err))
		}
		if loc == nil {
			fmt.Fprintf(env.Stdout, "node %d: location cleared\n", id)
			return nil
		}
		fmt.Fprintf(env.Stdout, "node %d stands in %s\n", id, strings.Trim(loc.City+", "+loc.Country, ", "))
		return nil
	})
}
