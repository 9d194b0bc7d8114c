package cli

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/explorer"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/registry"
)

// placeFlags constrain the node zosctl picks for a deployment given
// without --node.
type placeFlags struct {
	farms   idList
	country string
	city    string
}

func addPlaceFlags(fs *flag.FlagSet) *placeFlags {
	p := &placeFlags{}
	fs.Var(&p.farms, "farm", "without --node: pick a node of these farms (comma separated)")
	fs.StringVar(&p.country, "country", "", "without --node: pick a node in this country")
	fs.StringVar(&p.city, "city", "", "without --node: pick a node in this city")
	return p
}

// needs is what a deployment asks of its node.
type needs struct {
	capacity registry.Resources
	ips      int      // public IPv4 addresses from the node's farm
	domain   bool     // a name gateway: the node's public config has a domain
	public   bool     // an FQDN gateway: the node has a public config
	nodes    []uint32 // only these nodes (a VM's network is there); nil: any
	types    []string // the workload types the node must provision
}

// needsOf is what d asks of its node.
func needsOf(d *gridtypes.Deployment) (needs, error) {
	c, err := d.Capacity()
	if err != nil {
		return needs{}, err
	}
	n := needs{capacity: registry.Resources{CRU: c.CRU, MRU: c.MRU, SRU: c.SRU, HRU: c.HRU}, ips: int(c.IPV4U)}
	for _, wl := range d.Workloads {
		if t := string(wl.Type); !slices.Contains(n.types, t) {
			n.types = append(n.types, t)
		}
		if wl.Type == gridtypes.ZMachineType {
			if data, err := wl.WorkloadData(); err == nil {
				if m, ok := data.(*gridtypes.ZMachine); ok && m.Network.Planetary && !slices.Contains(n.types, "yggdrasil") {
					n.types = append(n.types, "yggdrasil") // the node must be on the overlay
				}
			}
		}
		switch wl.Type {
		case gridtypes.GatewayNameProxyType:
			n.domain = true
		case gridtypes.GatewayFQDNProxyType:
			n.public = true
		}
	}
	return n, nil
}

// why says what node v lacks for n, or "" when it fits.
func (n needs) why(v *nodeView) string {
	var miss []string
	gb := func(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }
	if v.Free.CRU < n.capacity.CRU {
		miss = append(miss, fmt.Sprintf("%d free cores of %d needed", v.Free.CRU, n.capacity.CRU))
	}
	for _, r := range []struct {
		name       string
		free, want uint64
	}{{"memory", v.Free.MRU, n.capacity.MRU}, {"SSD", v.Free.SRU, n.capacity.SRU}, {"HDD", v.Free.HRU, n.capacity.HRU}} {
		if r.free < r.want {
			miss = append(miss, fmt.Sprintf("%s free %s of %s needed", r.name, gb(r.free), gb(r.want)))
		}
	}
	if v.FreeIPs < n.ips {
		miss = append(miss, fmt.Sprintf("farm %d has %d free public IPs of %d needed", v.FarmID, v.FreeIPs, n.ips))
	}
	// Nodes that report no features (older versions) are not judged on them.
	if len(v.Features) > 0 {
		for _, t := range n.types {
			if !slices.Contains(v.Features, t) {
				miss = append(miss, "does not provision "+t)
			}
		}
	}
	pc := v.PublicConfig
	if n.domain && (pc == nil || pc.Domain == "") {
		miss = append(miss, "no domain in its public config (name gateways need one)")
	}
	if n.public && (pc == nil || (pc.IPv4 == "" && pc.IPv6 == "")) {
		miss = append(miss, "no public config (FQDN gateways need one)")
	}
	return strings.Join(miss, ", ")
}

// pick chooses the node for a deployment of twin: up, within the
// constraints, available to the twin (not rented by another) and with
// room for everything the deployment asks. Nodes the twin rents come
// first, then the one with the most free memory (spreading deployments),
// then the lowest id. With none, the error says why each candidate was
// left out.
func pick(views []nodeView, n needs, p *placeFlags, twin uint32) (nodeView, error) {
	q := nodeQuery{farms: p.farms, country: p.country, city: p.city, status: explorer.StatusUp, availableFor: twin}
	var constraints []string
	if len(p.farms) > 0 {
		constraints = append(constraints, fmt.Sprintf("farm %v", []uint32(p.farms)))
	}
	if p.country != "" {
		constraints = append(constraints, "country "+p.country)
	}
	if p.city != "" {
		constraints = append(constraints, "city "+p.city)
	}
	if n.nodes != nil {
		constraints = append(constraints, fmt.Sprintf("nodes %v", n.nodes))
	}
	var fits []nodeView
	var reasons []string
	candidates := 0
	for i := range views {
		v := &views[i]
		if !q.match(v) || (n.nodes != nil && !slices.Contains(n.nodes, v.ID)) {
			continue
		}
		candidates++
		if w := n.why(v); w != "" {
			reasons = append(reasons, fmt.Sprintf("node %d: %s", v.ID, w))
			continue
		}
		fits = append(fits, *v)
	}
	where := "up and available to you"
	if len(constraints) > 0 {
		where += " (" + strings.Join(constraints, ", ") + ")"
	}
	if candidates == 0 {
		return nodeView{}, fmt.Errorf("%w: no node is %s", ErrNoNode, where)
	}
	if len(fits) == 0 {
		const most = 10
		more := ""
		if len(reasons) > most {
			more = fmt.Sprintf("\n  and %d more", len(reasons)-most)
			reasons = reasons[:most]
		}
		return nodeView{}, fmt.Errorf("%w: none of the %d nodes %s has room for cru %d, mru %d, sru %d, hru %d, %d public IPs:\n  %s%s",
			ErrNoNode, candidates, where, n.capacity.CRU, n.capacity.MRU, n.capacity.SRU, n.capacity.HRU, n.ips, strings.Join(reasons, "\n  "), more)
	}
	slices.SortFunc(fits, func(a, b nodeView) int {
		if c := cmp.Compare(b2int(b.RentedBy == twin), b2int(a.RentedBy == twin)); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Free.MRU, a.Free.MRU); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return fits[0], nil
}

func b2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

// pickNode picks the node for d (see pick), reading the registry, and
// says which it took.
func (s *session) pickNode(ctx context.Context, env *Env, f deployFlags, d *gridtypes.Deployment, only []uint32) (uint32, error) {
	n, err := needsOf(d)
	if err != nil {
		return 0, err
	}
	n.nodes = only
	g, err := readGrid(ctx, s.reg)
	if err != nil {
		return 0, err
	}
	v, err := pick(g.views(time.Now()), n, f.place, s.twin.ID)
	if err != nil {
		return 0, err
	}
	progress(env, *f.json, "picked node %d (farm %d%s): free cru %d, mru %s GiB, sru %s GiB, hru %s GiB\n", v.ID, v.FarmID,
		strings.TrimRight(", "+strings.TrimSpace(v.Location.Country+" "+v.Location.City), ", "), v.Free.CRU, gib(v.Free.MRU), gib(v.Free.SRU), gib(v.Free.HRU))
	return v.ID, nil
}

// networkNodes are the nodes where the twin's network name has a
// resource.
func networkNodes(ctx context.Context, s *session, name string) ([]uint32, error) {
	nds, err := findNetwork(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if len(nds) == 0 {
		return nil, fmt.Errorf("you have no network %q: create it with `zosctl network create %s --nodes ...`", name, name)
	}
	only := []uint32{}
	for _, nd := range nds {
		only = append(only, nd.node)
	}
	return only, nil
}
