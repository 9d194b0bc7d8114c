package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

func farmCommand() *command {
	return &command{name: "farm", summary: "farms and their public IPs", subs: append([]*command{
		{name: "create", usage: "NAME [--grid URL] [--key FILE] [--json]", summary: "create a farm owned by your twin", run: farmCreate},
		{name: "add-ip", usage: "--farm ID CIDR --gw IP [--grid URL] [--key FILE]", summary: "add a public IP (address/prefix) and its gateway to your farm", run: farmAddIP},
		{name: "remove-ip", usage: "--farm ID IP [--grid URL] [--key FILE]", summary: "remove a free public IP from your farm", run: farmRemoveIP},
		{name: "nodes", usage: "FARM [--grid URL] [--json]", summary: "list a farm's nodes with their status, power, rent and public config", run: farmNodes},
		{name: "list", usage: "[--grid URL] [--json]", summary: "list farms", run: farmList},
		{name: "channel", usage: "FARM CHANNEL [--grid URL] [--key FILE]", summary: "choose the release channel your farm's nodes follow (\"\": their default)", run: farmChannel},
		{name: "token", usage: "FARM [--expires DURATION] [--grid URL] [--key FILE] [--json]",
			summary: "print a token that lets nodes join your farm until it expires (zos node --farm-token, image build --farm-token)", run: farmToken},
		farmPricingCommand(),
	}, farmPowerCommands()...)}
}

// DefaultFarmTokenTTL is how long a farm token lets nodes join.
const DefaultFarmTokenTTL = 7 * 24 * time.Hour

// farmTokenView is farm token --json.
type farmTokenView struct {
	Token   string    `json:"token"`
	FarmID  uint32    `json:"farm_id"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// farmToken signs, with the farmer's key, a token that lets nodes join
// the farm. The registry checks it against the key of the farm's twin,
// so the farm is checked to be the key's first.
func farmToken(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm token", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	ttl := fs.Duration("expires", DefaultFarmTokenTTL, "how long the token lets nodes join")
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
	if *ttl <= 0 {
		return usageError("--expires %s: want a positive duration", *ttl)
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		f, err := s.reg.Farm(ctx, uint32(farm))
		if err != nil {
			return fmt.Errorf("reading farm %d: %w", farm, explain(err))
		}
		twin, err := s.reg.TwinByKey(ctx, s.key.Public())
		if err != nil {
			return fmt.Errorf("reading your twin: %w", explain(err))
		}
		if f.TwinID != twin.ID {
			return fmt.Errorf("farm %d belongs to twin %d, not to yours (%d): only its farmer's tokens let nodes in", f.ID, f.TwinID, twin.ID)
		}
		tok, err := registry.NewFarmToken(s.key, f.ID, time.Now().Add(*ttl))
		if err != nil {
			return err
		}
		if *o.json {
			return printJSON(env, farmTokenView{Token: tok.String(), FarmID: tok.FarmID, ID: tok.IDHex(), Expires: tok.Expires})
		}
		fmt.Fprintln(env.Stdout, tok.String())
		fmt.Fprintf(env.Stderr, "token %s lets nodes join farm %d until %s\n", tok.IDHex(), tok.FarmID, tok.Expires.Format(time.RFC3339))
		return nil
	})
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
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		f, err := s.reg.CreateFarm(ctx, pos[0])
		if err != nil {
			return fmt.Errorf("creating farm %q: %w", pos[0], explain(err))
		}
		if *o.json {
			return printJSON(env, f)
		}
		fmt.Fprintf(env.Stdout, "farm: %d\nname: %s\ntwin: %d\n", f.ID, f.Name, f.TwinID)
		return nil
	})
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
	id, err := requiredID("farm", *farm)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *gw == "" {
		return usageError("want --farm ID, one CIDR and --gw IP")
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		if err := s.reg.AddFarmIP(ctx, id, pos[0], *gw); err != nil {
			return fmt.Errorf("adding %s to farm %d: %w", pos[0], id, explain(err))
		}
		if *o.json {
			return printJSON(env, registry.PublicIP{IP: pos[0], Gateway: *gw})
		}
		fmt.Fprintf(env.Stdout, "added %s (gateway %s) to farm %d\n", pos[0], *gw, id)
		return nil
	})
}

func farmList(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm list", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
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
	})
}

func farmChannel(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("farm channel", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	pos, err := parseFlags(fs, env, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usageError("want FARM and CHANNEL")
	}
	farm, err := strconv.ParseUint(pos[0], 10, 32)
	if err != nil || farm == 0 {
		return usageError("bad farm id %q", pos[0])
	}
	return withGrid(ctx, o, true, func(ctx context.Context, s *session) error {
		if err := s.reg.SetFarmChannel(ctx, uint32(farm), pos[1]); err != nil {
			return fmt.Errorf("setting the channel of farm %d: %w", farm, explain(err))
		}
		fmt.Fprintf(env.Stdout, "farm %d follows channel %q\n", farm, pos[1])
		return nil
	})
}
