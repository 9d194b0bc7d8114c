package cli

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/explorer"
	"github.com/zos-go/zos/internal/registry"
)

func nodeCommand() *command {
	return &command{name: "node", summary: "nodes of the grid", subs: append([]*command{
		{name: "list", usage: "[--farm ID] [--status up|down|standby] [--country C] [--twin ID] [--grid URL] [--json]", summary: "list nodes", run: nodeList},
		{name: "show", usage: "ID [--grid URL] [--json]", summary: "show a node", run: nodeShow},
	}, append(nodeAPICommands(), nodePowerCommands()...)...)}
}

// nodeView is a node with its status, as zosctl prints it.
type nodeView struct {
	registry.Node
	Status string `json:"status"`
}

func nodeList(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node list", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	farm := fs.Uint("farm", 0, "only nodes of this farm")
	status := fs.String("status", "", "only nodes with this status: up, down or standby")
	country := fs.String("country", "", "only nodes in this country")
	twin := fs.Uint("twin", 0, "only the node of this twin")
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	switch *status {
	case "", explorer.StatusUp, explorer.StatusDown, explorer.StatusStandby:
	default:
		return usageError("--status %q: want up, down or standby", *status)
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
		nodes, err := s.reg.Nodes(ctx)
		if err != nil {
			return fmt.Errorf("listing nodes: %w", explain(err))
		}
		now := time.Now()
		views := []nodeView{}
		for _, n := range nodes {
			v := nodeView{Node: n, Status: explorer.Status(&n, now)}
			if (*farm != 0 && uint(n.FarmID) != *farm) || (*status != "" && v.Status != *status) ||
				(*country != "" && !strings.EqualFold(n.Location.Country, *country)) || (*twin != 0 && uint(n.TwinID) != *twin) {
				continue
			}
			views = append(views, v)
		}
		if *o.json {
			return printJSON(env, views)
		}
		var rows [][]string
		for _, v := range views {
			rows = append(rows, []string{strconv.Itoa(int(v.ID)), strconv.Itoa(int(v.FarmID)), strconv.Itoa(int(v.TwinID)), v.Status,
				fmt.Sprintf("%d/%d", v.Used.CRU, v.Total.CRU), gib(v.Used.MRU) + "/" + gib(v.Total.MRU),
				gib(v.Used.SRU) + "/" + gib(v.Total.SRU), gib(v.Used.HRU) + "/" + gib(v.Total.HRU), v.Location.Country})
		}
		return table(env.Stdout, "ID\tFARM\tTWIN\tSTATUS\tCPU\tMEM GiB\tSSD GiB\tHDD GiB\tCOUNTRY", rows)
	})
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
		v := nodeView{Node: n, Status: explorer.Status(&n, time.Now())}
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
