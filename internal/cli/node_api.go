package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
)

// nodeAPICommands ask a node itself (over the relay) rather than the registry.
func nodeAPICommands() []*command {
	return []*command{
		{name: "pools", usage: "ID [--json]", summary: "the node's storage pools and their use (zos.storage.pools)", run: nodePools},
		{name: "stats", usage: "ID [--json]", summary: "the node's capacity and use (zos.statistics.get)", run: nodeStats},
	}
}

// nodeCall parses ID and calls cmd on that node.
func nodeCall(ctx context.Context, env *Env, args []string, name, cmd string, resp any) (bool, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := addGridFlags(fs, env)
	id, err := oneIDArg(fs, env, args, "node id", 32)
	if err != nil {
		return false, err
	}
	return *f.json, callNodeOnce(ctx, f, uint32(id), cmd, nil, resp)
}

func nodePools(ctx context.Context, env *Env, args []string) error {
	var pools []nodeapi.Pool
	asJSON, err := nodeCall(ctx, env, args, "node pools", nodeapi.CmdPools, &pools)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, pools)
	}
	var rows [][]string
	for _, p := range pools {
		state := "ok"
		if p.Broken != "" {
			state = "broken: " + p.Broken
		}
		rows = append(rows, []string{p.Name, p.Type, human(p.Size), human(p.Used), state})
	}
	return table(env.Stdout, "POOL\tTYPE\tSIZE\tUSED\tSTATE", rows)
}

func nodeStats(ctx context.Context, env *Env, args []string) error {
	var st nodeapi.Statistics
	asJSON, err := nodeCall(ctx, env, args, "node stats", nodeapi.CmdStatistics, &st)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env, st)
	}
	row := func(name string, c gridtypes.Capacity) []string {
		return []string{name, fmt.Sprint(c.CRU), human(c.MRU), human(c.SRU), human(c.HRU), fmt.Sprint(c.IPV4U)}
	}
	if err := table(env.Stdout, "\tCRU\tMRU\tSRU\tHRU\tIPV4U", [][]string{row("total", st.Total), row("used", st.Used), row("system", st.System)}); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "deployments %d, workloads %d\n", st.Users.Deployments, st.Users.Workloads)
	return nil
}

// human prints bytes with a binary unit.
func human(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%dB", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(b)/float64(div), "KMGTPE"[exp])
}
