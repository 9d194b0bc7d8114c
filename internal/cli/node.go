package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/explorer"
)

func nodeCommand() *command {
	return &command{name: "node", summary: "nodes of the grid", subs: append([]*command{
		{name: "list", usage: nodeListUsage, summary: "search nodes: free capacity, farm, location, public IPs, rent; sorted and paged", run: nodeList},
		{name: "show", usage: "ID [--grid URL] [--json]", summary: "show a node", run: nodeShow},
	}, append(append(append(farmOpsCommands(), nodeAPICommands()...), nodeFactsCommands()...), nodePowerCommands()...)...)}
}

func gib(b uint64) string { return strconv.FormatUint(b>>30, 10) }

func nodeShow(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node show", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "node id", 32)
	if err != nil {
		return err
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
		n, err := s.reg.Node(ctx, uint32(id))
		if err != nil {
			return fmt.Errorf("reading node %d: %w", id, explain(err))
		}
		v := nodeView{Node: n, Status: explorer.Status(&n, time.Now()), Free: explorer.Free(&n)}
		if *o.json {
			return printJSON(env, v)
		}
		w := env.Stdout
		fmt.Fprintf(w, "node:     %d\nfarm:     %d\ntwin:     %d\nstatus:   %s\nversion:  %s\n", n.ID, n.FarmID, n.TwinID, v.Status, n.Version)
		fmt.Fprintf(w, "total:    cru %d, mru %s GiB, sru %s GiB, hru %s GiB\n", n.Total.CRU, gib(n.Total.MRU), gib(n.Total.SRU), gib(n.Total.HRU))
		fmt.Fprintf(w, "used:     cru %d, mru %s GiB, sru %s GiB, hru %s GiB\n", n.Used.CRU, gib(n.Used.MRU), gib(n.Used.SRU), gib(n.Used.HRU))
		fmt.Fprintf(w, "uptime:   %s (reported %s)\n", time.Duration(n.Uptime)*time.Second, n.Updated.Format(time.RFC3339))
		fmt.Fprintf(w, "power:    %s\n", powerLine(n))
		if n.Location.Country != "" || n.Location.City != "" {
			fmt.Fprintf(w, "location: %s %s\n", n.Location.City, n.Location.Country)
		}
		if pc := n.PublicConfig; pc != nil {
			fmt.Fprintf(w, "public:   ipv4 %s gw %s, ipv6 %s gw %s, domain %s\n", pc.IPv4, pc.GW4, pc.IPv6, pc.GW6, pc.Domain)
		}
		for _, i := range n.Interfaces {
			fmt.Fprintf(w, "iface:    %s %s %s\n", i.Name, i.MAC, strings.Join(i.IPs, " "))
		}
		return nil
	})
}
