package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"

	"github.com/zos-go/zos/internal/registry"
)

func farmCommand() *command {
	return &command{name: "farm", summary: "farms and their public IPs", subs: []*command{
		{name: "create", usage: "NAME [--grid URL] [--key FILE] [--json]", summary: "create a farm owned by your twin", run: farmCreate},
		{name: "add-ip", usage: "--farm ID CIDR --gw IP [--grid URL] [--key FILE]", summary: "add a public IP (address/prefix) and its gateway to your farm", run: farmAddIP},
		{name: "list", usage: "[--grid URL] [--json]", summary: "list farms", run: farmList},
	}}
}

func farmCreate(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm create", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want one farm name")
	}
	s, err := connectGrid(ctx, o, true)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, gridTimeout)
	defer cancel()
	f, err := s.reg.CreateFarm(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("creating farm %q: %w", pos[0], explain(err))
	}
	if *o.json {
		return printJSON(env, f)
	}
	fmt.Fprintf(env.Stdout, "farm: %d\nname: %s\ntwin: %d\n", f.ID, f.Name, f.TwinID)
	return nil
}

func farmAddIP(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm add-ip", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	farm := fs.Uint("farm", 0, "farm id")
	gw := fs.String("gw", "", "gateway of the address")
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *farm == 0 || *gw == "" {
		return usageError("want --farm ID, one CIDR and --gw IP")
	}
	s, err := connectGrid(ctx, o, true)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, gridTimeout)
	defer cancel()
	if err := s.reg.AddFarmIP(ctx, uint32(*farm), pos[0], *gw); err != nil {
		return fmt.Errorf("adding %s to farm %d: %w", pos[0], *farm, explain(err))
	}
	if *o.json {
		return printJSON(env, registry.PublicIP{IP: pos[0], Gateway: *gw})
	}
	fmt.Fprintf(env.Stdout, "added %s (gateway %s) to farm %d\n", pos[0], *gw, *farm)
	return nil
}

func farmList(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm list", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	s, err := connectGrid(ctx, o, false)
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, gridTimeout)
	defer cancel()
	farms, err := s.reg.Farms(ctx)
	if err != nil {
		return fmt.Errorf("listing farms: %w", explain(err))
	}
	if *o.json {
		if farms == nil {
			farms = []registry.Farm{}
		}
		return printJSON(env, farms)
	}
	var rows [][]string
	for _, f := range farms {
		free := 0
		for _, ip := range f.PublicIPs {
			if ip.ContractID == 0 {
				free++
			}
		}
		rows = append(rows, []string{strconv.Itoa(int(f.ID)), f.Name, strconv.Itoa(int(f.TwinID)), fmt.Sprintf("%d/%d", free, len(f.PublicIPs))})
	}
	return table(env.Stdout, "ID\tNAME\tTWIN\tFREE IPS", rows)
}
