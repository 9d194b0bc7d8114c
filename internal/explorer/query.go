package explorer

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/zos-go/zos/internal/registry"
)

// errBadQuery marks errors that answer 400.
var errBadQuery = errors.New("bad query")

// query reads URL query parameters, rejecting unknown and repeated ones and
// collecting every problem so that the client sees them all at once.
type query struct {
	v    url.Values
	errs []error
}

func newQuery(v url.Values, allowed ...string) *query {
	q := &query{v: v}
	var unknown []string
	for k, vals := range v {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
			continue
		}
		if len(vals) > 1 {
			q.errs = append(q.errs, fmt.Errorf("%s is given %d times", k, len(vals)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		q.errs = append(q.errs, fmt.Errorf("unknown parameter(s) %s; known: %s",
			strings.Join(unknown, ", "), strings.Join(allowed, ", ")))
	}
	return q
}

// err is nil or every problem found, wrapping errBadQuery.
func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", errBadQuery, errors.Join(q.errs...))
}

func (q *query) str(name string) (string, bool) {
	if !q.v.Has(name) {
		return "", false
	}
	return strings.TrimSpace(q.v.Get(name)), true
}

func (q *query) uint(name string, bits int) (uint64, bool) {
	s, ok := q.str(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		q.errs = append(q.errs, fmt.Errorf("%s=%q: want an integer from 0 to %d", name, s, uint64(1)<<bits-1))
		return 0, false
	}
	return n, true
}

// id is the uint32 id of name, nil when the query has none (or a bad one,
// then recorded in q's errors), like bool.
func (q *query) id(name string) *uint32 {
	n, ok := q.uint(name, 32)
	if !ok {
		return nil
	}
	id := uint32(n)
	return &id
}

func (q *query) uint32List(name string) []uint32 {
	s, ok := q.str(name)
	if !ok {
		return nil
	}
	var out []uint32
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		n, err := strconv.ParseUint(part, 10, 32)
		if err != nil {
			q.errs = append(q.errs, fmt.Errorf("%s=%q: want a comma separated list of ids", name, s))
			return nil
		}
		out = append(out, uint32(n))
	}
	return out
}

func (q *query) bool(name string) *bool {
	s, ok := q.str(name)
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.errs = append(q.errs, fmt.Errorf("%s=%q: want true or false", name, s))
		return nil
	}
	return &b
}

func (q *query) oneOf(name string, choices ...string) string {
	s, ok := q.str(name)
	if !ok {
		return ""
	}
	s = strings.ToLower(s)
	if !slices.Contains(choices, s) {
		q.errs = append(q.errs, fmt.Errorf("%s=%q: want one of %s", name, s, strings.Join(choices, ", ")))
		return ""
	}
	return s
}

// pageParams is a 1-based page of size items.
type pageParams struct {
	page, size int
}

func (q *query) page(cfg Config) pageParams {
	p := pageParams{page: 1, size: cfg.DefaultPageSize}
	if n, ok := q.uint("page", 32); ok {
		if n == 0 {
			q.errs = append(q.errs, errors.New("page=0: pages start at 1"))
		} else {
			p.page = int(n)
		}
	}
	if n, ok := q.uint("size", 32); ok {
		if n == 0 || n > uint64(cfg.MaxPageSize) {
			q.errs = append(q.errs, fmt.Errorf("size=%d: want 1 to %d", n, cfg.MaxPageSize))
		} else {
			p.size = int(n)
		}
	}
	return p
}

// window is the [start, end) range of the page among total items.
func (p pageParams) window(total int) (int, int) {
	if p.size <= 0 || p.page-1 > total/p.size { // also keeps the product below overflow
		return total, total
	}
	start := min((p.page-1)*p.size, total)
	return start, min(start+p.size, total)
}

// nodeFilter is the parsed query of /nodes.
type nodeFilter struct {
	farmIDs                   []uint32
	nodeID, twinID            *uint32
	status                    string
	freeCRU, freeMRU          uint64
	freeSRU, freeHRU, freeIPs uint64
	ipv4, domain              *bool
	country                   string // lower case
	sortBy                    sortKey
	desc                      bool
	page                      pageParams
}

func nodeParams() []string {
	return []string{
		"farm_ids", "node_id", "twin_id", "status", "free_cru", "free_mru", "free_sru", "free_hru",
		"free_ips", "ipv4", "domain", "country", "sort_by", "sort_order", "page", "size",
	}
}

func parseNodeFilter(v url.Values, cfg Config) (nodeFilter, error) {
	q := newQuery(v, nodeParams()...)
	var f nodeFilter
	f.farmIDs = q.uint32List("farm_ids")
	f.nodeID = q.id("node_id")
	f.twinID = q.id("twin_id")
	f.status = q.oneOf("status", StatusUp, StatusDown, StatusStandby)
	f.freeCRU, _ = q.uint("free_cru", 64)
	f.freeMRU, _ = q.uint("free_mru", 64)
	f.freeSRU, _ = q.uint("free_sru", 64)
	f.freeHRU, _ = q.uint("free_hru", 64)
	f.freeIPs, _ = q.uint("free_ips", 32)
	f.ipv4 = q.bool("ipv4")
	f.domain = q.bool("domain")
	if c, ok := q.str("country"); ok {
		f.country = strings.ToLower(c)
	}
	if name := q.oneOf("sort_by", sortKeyNames()...); name != "" {
		for k := range numSortKeys {
			if k.name() == name {
				f.sortBy = k
			}
		}
	}
	f.desc = q.oneOf("sort_order", "asc", "desc") == "desc"
	f.page = q.page(cfg)
	return f, q.err()
}

// match reports whether the node passes every filter but status and
// country, which queryNodes checks with the clock and the snapshot's
// country index.
func (f *nodeFilter) match(m *nodeMeta) bool {
	if f.nodeID != nil && m.id != *f.nodeID {
		return false
	}
	if f.twinID != nil && m.twinID != *f.twinID {
		return false
	}
	if len(f.farmIDs) > 0 && !slices.Contains(f.farmIDs, m.farmID) {
		return false
	}
	if m.free.CRU < f.freeCRU || m.free.MRU < f.freeMRU || m.free.SRU < f.freeSRU || m.free.HRU < f.freeHRU {
		return false
	}
	if uint64(m.freeIPs) < f.freeIPs {
		return false
	}
	if f.ipv4 != nil && *f.ipv4 != (m.freeIPs > 0) {
		return false
	}
	if f.domain != nil && *f.domain != m.domain {
		return false
	}
	return true
}

// farmFilter is the parsed query of /farms.
type farmFilter struct {
	farmID, twinID *uint32
	name           string // lower case
	freeIPs        uint64
	page           pageParams
}

func parseFarmFilter(v url.Values, cfg Config) (farmFilter, error) {
	q := newQuery(v, "farm_id", "twin_id", "name", "free_ips", "page", "size")
	var f farmFilter
	f.farmID = q.id("farm_id")
	f.twinID = q.id("twin_id")
	if name, ok := q.str("name"); ok {
		f.name = strings.ToLower(name)
	}
	f.freeIPs, _ = q.uint("free_ips", 32)
	f.page = q.page(cfg)
	return f, q.err()
}

func (f *farmFilter) match(fe *farmEntry) bool {
	switch {
	case f.farmID != nil && fe.farm.ID != *f.farmID:
		return false
	case f.twinID != nil && fe.farm.TwinID != *f.twinID:
		return false
	case f.name != "" && strings.ToLower(fe.farm.Name) != f.name:
		return false
	}
	return uint64(fe.freeIPs) >= f.freeIPs
}

// contractFilter is the parsed query of /contracts.
type contractFilter struct {
	twinID, nodeID *uint32
	state, typ     string
	page           pageParams
}

func parseContractFilter(v url.Values, cfg Config) (contractFilter, error) {
	q := newQuery(v, "twin_id", "node_id", "state", "type", "page", "size")
	var f contractFilter
	f.twinID = q.id("twin_id")
	f.nodeID = q.id("node_id")
	f.state = q.oneOf("state", registry.StateCreated, registry.StateCanceled)
	f.typ = q.oneOf("type", registry.TypeNode, registry.TypeName, registry.TypeRent)
	f.page = q.page(cfg)
	return f, q.err()
}

func (f *contractFilter) match(c *registry.Contract) bool {
	switch {
	case f.twinID != nil && c.TwinID != *f.twinID:
		return false
	case f.nodeID != nil && c.NodeID != *f.nodeID:
		return false
	case f.state != "" && c.State != f.state:
		return false
	case f.typ != "" && c.Type != f.typ:
		return false
	}
	return true
}
