package cli

import (
	"context"
	"flag"

	"github.com/zos-go/zos/internal/gridtypes"
)

func gatewayCommand() *command {
	const common = "[--node N | --farm ID --country C --city C] --backend URL... [--tls-passthrough] [--network NET] [--workload gw] [--keep-on-error]"
	return &command{name: "gateway", summary: "deploy a gateway that exposes backends on a node's public address", subs: []*command{
		{name: "name", usage: "--name NAME " + common,
			summary: "https://NAME.<the node's domain> to the backends (reserve NAME first: zosctl name reserve)", run: deployGatewayName},
		{name: "fqdn", usage: "--fqdn DOMAIN " + common,
			summary: "your DOMAIN (its DNS record points at the node) to the backends", run: deployGatewayFQDN},
	}}
}

// gatewayFlags are the flags both gateway kinds take.
type gatewayFlags struct {
	deployFlags
	backends    multiFlag
	passthrough *bool
	network     *string
	workload    *string
}

func addGatewayFlags(fs *flag.FlagSet, env *Env) *gatewayFlags {
	g := &gatewayFlags{deployFlags: addPlacedDeployFlags(fs, env)}
	fs.Var(&g.backends, "backend", "where traffic goes, repeatable: http://IP:PORT, or IP:PORT with --tls-passthrough")
	g.passthrough = fs.Bool("tls-passthrough", false, "pass TLS through to the backends (they hold the certificate) instead of ending it at the gateway")
	g.network = fs.String("network", "", "reach the backends over this network of yours (the gateway node must be one of its nodes)")
	g.workload = fs.String("workload", "gw", "workload name")
	return g
}

// base is the GatewayBase of the flags.
func (g *gatewayFlags) base() (gridtypes.GatewayBase, error) {
	if len(g.backends) == 0 {
		return gridtypes.GatewayBase{}, usageError("at least one --backend is required")
	}
	b := gridtypes.GatewayBase{TLSPassthrough: *g.passthrough}
	for _, s := range g.backends {
		b.Backends = append(b.Backends, gridtypes.Backend(s))
	}
	if *g.network != "" {
		b.Network = g.network
	}
	return b, nil
}

func deployGatewayName(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deploy gateway name", flag.ContinueOnError)
	g := addGatewayFlags(fs, env)
	name := fs.String("name", "", "the reserved name (required)")
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	if *name == "" {
		return usageError("--name is required")
	}
	base, err := g.base()
	if err != nil {
		return err
	}
	return deployGateway(ctx, env, g, gridtypes.GatewayNameProxyType, &gridtypes.GatewayNameProxy{GatewayBase: base, Name: *name})
}

func deployGatewayFQDN(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("deploy gateway fqdn", flag.ContinueOnError)
	g := addGatewayFlags(fs, env)
	fqdn := fs.String("fqdn", "", "the domain (required)")
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	if *fqdn == "" {
		return usageError("--fqdn is required")
	}
	base, err := g.base()
	if err != nil {
		return err
	}
	return deployGateway(ctx, env, g, gridtypes.GatewayFQDNProxyType, &gridtypes.GatewayFQDNProxy{GatewayBase: base, FQDN: *fqdn})
}

// deployGateway deploys one gateway workload; without --node it picks a
// node that fits (with a domain for names), among the network's nodes
// when the gateway reaches its backends over a network.
func deployGateway(ctx context.Context, env *Env, g *gatewayFlags, typ gridtypes.WorkloadType, data gridtypes.WorkloadData) error {
	wl := gridtypes.Workload{Name: *g.workload, Type: typ}
	if err := wl.SetData(data); err != nil {
		return err
	}
	d := &gridtypes.Deployment{Workloads: []gridtypes.Workload{wl}}
	f := g.deployFlags
	if !f.pickLater() || *g.network == "" {
		return deployWorkloads(ctx, env, f, d)
	}
	return withSession(ctx, env, f, func(ctx context.Context, s *session) error {
		if err := complete(d, s.twin.ID); err != nil {
			return err
		}
		only, err := networkNodes(ctx, s, *g.network)
		if err != nil {
			return err
		}
		node, err := s.pickNode(ctx, env, f, d, only)
		if err != nil {
			return err
		}
		return s.deploy(ctx, env, f, node, d)
	})
}
