package cli

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/explorer"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/registry"
)

// nodeView is a node as zosctl lists it: the registry's record with what
// the explorer derives from it (status, free capacity, rent, the farm's
// free public IPs), computed by the same rules (explorer.Status, Free).
type nodeView struct {
	registry.Node
	Status   string             `json:"status"`
	Free     registry.Resources `json:"free_resources"`
	FreeIPs  int                `json:"farm_free_ips"`
	RentedBy uint32             `json:"rented_by,omitempty"`
	Rentable bool               `json:"rentable"`
	// Contracts counts the node's active node contracts.
	Contracts int `json:"contracts"`
}

// gridState is what node search reads from the registry.
type gridState struct {
	nodes     []registry.Node
	farms     []registry.Farm
	contracts []registry.Contract // active ones
}

// nodeLister is the part of the registry client node search reads.
type nodeLister interface {
	Nodes(ctx context.Context) ([]registry.Node, error)
	Farms(ctx context.Context) ([]registry.Farm, error)
	Contracts(ctx context.Context, filter registry.ContractFilter) ([]registry.Contract, error)
}

var _ nodeLister = (*registry.Client)(nil)

// readGrid reads the nodes, farms and active contracts.
func readGrid(ctx context.Context, reg nodeLister) (gridState, error) {
	var g gridState
	var err error
	if g.nodes, err = reg.Nodes(ctx); err != nil {
		return g, fmt.Errorf("listing nodes: %w", explain(err))
	}
	if g.farms, err = reg.Farms(ctx); err != nil {
		return g, fmt.Errorf("listing farms: %w", explain(err))
	}
	if g.contracts, err = reg.Contracts(ctx, registry.ContractFilter{State: registry.StateCreated}); err != nil {
		return g, fmt.Errorf("listing contracts: %w", explain(err))
	}
	return g, nil
}

// views derives every node's view at now.
func (g gridState) views(now time.Time) []nodeView {
	freeIPs := map[uint32]int{}
	for _, f := range g.farms {
		for _, ip := range f.PublicIPs {
			if ip.ContractID == 0 {
				freeIPs[f.ID]++
			}
		}
	}
	renter, contracts := map[uint32]uint32{}, map[uint32]int{}
	for _, c := range g.contracts {
		if c.State != registry.StateCreated {
			continue
		}
		switch c.Type {
		case registry.TypeRent:
			renter[c.NodeID] = c.TwinID
		case registry.TypeNode:
			contracts[c.NodeID]++
		}
	}
	vs := make([]nodeView, 0, len(g.nodes))
	for _, n := range g.nodes {
		vs = append(vs, nodeView{Node: n, Status: explorer.Status(&n, now), Free: explorer.Free(&n), FreeIPs: freeIPs[n.FarmID],
			RentedBy: renter[n.ID], Rentable: renter[n.ID] == 0 && contracts[n.ID] == 0, Contracts: contracts[n.ID]})
	}
	return vs
}

// nodeQuery is what node list and placement filter on: the explorer's
// (gridproxy's) node filters that our registry has data for.
type nodeQuery struct {
	farms          []uint32
	status         string
	country, city  string // case-insensitive; "" any
	twin           uint32
	free           registry.Resources // at least this much free
	freeIPs        int                // the farm has at least this many free public IPs
	ipv4, domain   *bool              // the public config has an IPv4 address, a domain
	rentable       *bool
	rented         *bool
	rentedBy       uint32
	availableFor   uint32   // not rented, or rented by this twin
	features       []string // the node provisions every one (workload types, wireguard, yggdrasil)
	sortBy         string
	desc           bool
	page, pageSize int // page from 1; pageSize 0: all
}

// sortKeys are node list's --sort values.
var sortKeys = []string{"id", "farm", "free_cru", "free_mru", "free_sru", "free_hru", "free_ips", "uptime", "country"}

func boolIs(p *bool, v bool) bool { return p == nil || *p == v }

func (q *nodeQuery) match(v *nodeView) bool {
	pc := v.PublicConfig
	switch {
	case len(q.farms) > 0 && !slices.Contains(q.farms, v.FarmID), q.twin != 0 && v.TwinID != q.twin:
		return false
	case q.status != "" && v.Status != q.status:
		return false
	case q.country != "" && !strings.EqualFold(v.Location.Country, q.country), q.city != "" && !strings.EqualFold(v.Location.City, q.city):
		return false
	case v.Free.CRU < q.free.CRU, v.Free.MRU < q.free.MRU, v.Free.SRU < q.free.SRU, v.Free.HRU < q.free.HRU, v.FreeIPs < q.freeIPs:
		return false
	case !boolIs(q.ipv4, pc != nil && pc.IPv4 != ""), !boolIs(q.domain, pc != nil && pc.Domain != ""):
		return false
	case !boolIs(q.rentable, v.Rentable), !boolIs(q.rented, v.RentedBy != 0), q.rentedBy != 0 && v.RentedBy != q.rentedBy:
		return false
	case q.availableFor != 0 && v.RentedBy != 0 && v.RentedBy != q.availableFor:
		return false
	}
	for _, f := range q.features {
		if !slices.Contains(v.Features, f) {
			return false
		}
	}
	return true
}

// search filters, sorts and pages views; it also returns how many matched
// before paging.
func (q *nodeQuery) search(views []nodeView) ([]nodeView, int) {
	out := []nodeView{}
	for i := range views {
		if q.match(&views[i]) {
			out = append(out, views[i])
		}
	}
	slices.SortStableFunc(out, func(a, b nodeView) int {
		c := compareBy(q.sortBy, &a, &b)
		if q.desc {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.ID, b.ID)
		}
		return c
	})
	total := len(out)
	if q.pageSize > 0 {
		start := min((max(q.page, 1)-1)*q.pageSize, len(out))
		out = out[start:min(start+q.pageSize, len(out))]
	}
	return out, total
}

func compareBy(key string, a, b *nodeView) int {
	switch key {
	case "farm":
		return cmp.Compare(a.FarmID, b.FarmID)
	case "free_cru":
		return cmp.Compare(a.Free.CRU, b.Free.CRU)
	case "free_mru":
		return cmp.Compare(a.Free.MRU, b.Free.MRU)
	case "free_sru":
		return cmp.Compare(a.Free.SRU, b.Free.SRU)
	case "free_hru":
		return cmp.Compare(a.Free.HRU, b.Free.HRU)
	case "free_ips":
		return cmp.Compare(a.FreeIPs, b.FreeIPs)
	case "uptime":
		return cmp.Compare(a.Uptime, b.Uptime)
	case "country":
		return cmp.Compare(strings.ToLower(a.Location.Country), strings.ToLower(b.Location.Country))
	}
	return cmp.Compare(a.ID, b.ID)
}

// optBool is a flag that is unset, true or false (--rentable,
// --rentable=false).
type optBool struct{ v *bool }

func (o *optBool) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.FormatBool(*o.v)
}
func (o *optBool) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	o.v = &b
	return nil
}
func (o *optBool) IsBoolFlag() bool { return true }

// sizeFlag is a size flag with units ("2G"); empty is zero.
type sizeFlag struct{ n uint64 }

func (s *sizeFlag) String() string { return strconv.FormatUint(s.n, 10) }
func (s *sizeFlag) Set(v string) error {
	n, err := gridtypes.ParseSize(v)
	if err != nil {
		return err
	}
	s.n = n
	return nil
}

// idList is a comma separated, repeatable list of 32-bit ids.
type idList []uint32

func (l *idList) String() string { return fmt.Sprint(*l) }
func (l *idList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not an id above 0", s)
		}
		*l = append(*l, uint32(n))
	}
	return nil
}

const nodeListUsage = "[--farm ID[,ID]] [--status up|down|standby] [--country C] [--city C] [--twin ID] " +
	"[--free-cru N] [--free-mru SIZE] [--free-sru SIZE] [--free-hru SIZE] [--free-ips N] [--ipv4] [--domain] " +
	"[--rentable] [--rented] [--rented-by TWIN] [--available-for TWIN] [--features F[,F]] [--sort KEY] [--desc] [--page N --size N] [--grid URL] [--json]"

func nodeList(ctx context.Context, env *Env, args []string) error {
	fs := flag.NewFlagSet("node list", flag.ContinueOnError)
	o := addGridFlags(fs, env)
	var q nodeQuery
	var farms idList
	var freeMRU, freeSRU, freeHRU sizeFlag
	var ipv4, domain, rentable, rented optBool
	fs.Var(&farms, "farm", "only nodes of these farms (comma separated, repeatable)")
	fs.StringVar(&q.status, "status", "", "only nodes with this status: up, down or standby")
	fs.StringVar(&q.country, "country", "", "only nodes in this country")
	fs.StringVar(&q.city, "city", "", "only nodes in this city")
	twin := fs.Uint("twin", 0, "only the node of this twin")
	freeCRU := fs.Uint64("free-cru", 0, "at least this many free cores")
	fs.Var(&freeMRU, "free-mru", "at least this much free memory (e.g. 2G)")
	fs.Var(&freeSRU, "free-sru", "at least this much free SSD")
	fs.Var(&freeHRU, "free-hru", "at least this much free HDD")
	fs.IntVar(&q.freeIPs, "free-ips", 0, "the farm has at least this many free public IPs")
	fs.Var(&ipv4, "ipv4", "the node has (true) or has not (false) a public IPv4 config")
	fs.Var(&domain, "domain", "the node has (true) or has not (false) a domain (gateways)")
	fs.Var(&rentable, "rentable", "the node can (true) or cannot (false) be rented")
	fs.Var(&rented, "rented", "the node is (true) or is not (false) rented")
	rentedBy := fs.Uint("rented-by", 0, "only nodes rented by this twin")
	availableFor := fs.Uint("available-for", 0, "only nodes this twin may deploy on (not rented, or rented by it)")
	features := fs.String("features", "", "only nodes that provision all of these (comma separated: zmachine, zdb, qsfs, gateway-name-proxy, wireguard, yggdrasil, ...)")
	fs.StringVar(&q.sortBy, "sort", "id", "sort by "+strings.Join(sortKeys, ", "))
	fs.BoolVar(&q.desc, "desc", false, "sort in descending order")
	fs.IntVar(&q.page, "page", 1, "page to print (from 1), with --size")
	fs.IntVar(&q.pageSize, "size", 0, "nodes per page (0: all)")
	if pos, err := parseFlags(fs, env, args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageError("unexpected arguments %q", pos)
	}
	switch q.status {
	case "", explorer.StatusUp, explorer.StatusDown, explorer.StatusStandby:
	default:
		return usageError("--status %q: want up, down or standby", q.status)
	}
	if !slices.Contains(sortKeys, q.sortBy) {
		return usageError("--sort %q: want one of %s", q.sortBy, strings.Join(sortKeys, ", "))
	}
	if q.page < 1 || q.pageSize < 0 || q.freeIPs < 0 {
		return usageError("--page must be 1 or more, --size and --free-ips 0 or more")
	}
	for name, v := range map[string]uint{"twin": *twin, "rented-by": *rentedBy, "available-for": *availableFor} {
		if v > 1<<32-1 {
			return usageError("--%s %d: not a 32-bit id", name, v)
		}
	}
	q.farms, q.twin, q.rentedBy, q.availableFor = farms, uint32(*twin), uint32(*rentedBy), uint32(*availableFor)
	q.free = registry.Resources{CRU: *freeCRU, MRU: freeMRU.n, SRU: freeSRU.n, HRU: freeHRU.n}
	q.ipv4, q.domain, q.rentable, q.rented = ipv4.v, domain.v, rentable.v, rented.v
	for f := range strings.SplitSeq(*features, ",") {
		if f = strings.TrimSpace(f); f != "" {
			q.features = append(q.features, f)
		}
	}
	return withGrid(ctx, o, false, func(ctx context.Context, s *session) error {
		g, err := readGrid(ctx, s.reg)
		if err != nil {
			return err
		}
		views, total := q.search(g.views(time.Now()))
		if *o.json {
			return printJSON(env, views)
		}
		var rows [][]string
		for _, v := range views {
			rent := ""
			switch {
			case v.RentedBy != 0:
				rent = "rented by " + strconv.Itoa(int(v.RentedBy))
			case v.Rentable:
				rent = "rentable"
			}
			rows = append(rows, []string{strconv.Itoa(int(v.ID)), strconv.Itoa(int(v.FarmID)), strconv.Itoa(int(v.TwinID)), v.Status,
				fmt.Sprintf("%d/%d", v.Free.CRU, v.Total.CRU), gib(v.Free.MRU) + "/" + gib(v.Total.MRU),
				gib(v.Free.SRU) + "/" + gib(v.Total.SRU), gib(v.Free.HRU) + "/" + gib(v.Total.HRU), strconv.Itoa(v.FreeIPs),
				strings.TrimSpace(v.Location.Country + " " + v.Location.City), rent})
		}
		if err := table(env.Stdout, "ID\tFARM\tTWIN\tSTATUS\tFREE CPU\tFREE MEM GiB\tFREE SSD GiB\tFREE HDD GiB\tFARM IPS\tLOCATION\tRENT", rows); err != nil {
			return err
		}
		if q.pageSize > 0 {
			fmt.Fprintf(env.Stderr, "page %d: %d of %d nodes\n", q.page, len(views), total)
		}
		return nil
	})
}

// ErrNoNode is returned when no node fits a deployment.
var ErrNoNode = errors.New("no node fits")
