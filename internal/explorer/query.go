package explorer

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// errBadQuery marks errors that answer 400.
var errBadQuery = errors.New("bad query")

// query reads URL query parameters as gridproxy does: empty values are
// ignored, a list parameter takes repeated values and comma separated ones
// (farm_ids=1&farm_ids=2, status=up,standby), a single-valued parameter
// given twice takes the last value, and a parameter the endpoint does not
// know is an error. Every problem is collected so that the client sees
// them all at once.
type query struct {
	v    url.Values
	errs []error
}

// limitParams are the paging and sorting parameters of every list
// (gridproxy's types.Limit). randomize and balance are accepted and have
// no effect: the order is the asked one, and prices are all zero here.
var limitParams = []string{"page", "size", "ret_count", "randomize", "sort_by", "sort_order", "balance"}

// unsupported are parameters gridproxy takes that our registry has no data
// for; asking for them is an error rather than a silently wrong answer.
var unsupported = map[string]string{
	"region": "nodes report no region",
}

func newQuery(v url.Values, allowed ...string) *query {
	q := &query{v: url.Values{}}
	var unknown []string
	for k, vals := range v {
		var kept []string
		for _, s := range vals {
			if s = strings.TrimSpace(s); s != "" {
				kept = append(kept, s)
			}
		}
		if len(kept) == 0 {
			continue
		}
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
			continue
		}
		if why, ok := unsupported[k]; ok {
			q.errs = append(q.errs, fmt.Errorf("%s is not supported by this explorer: %s", k, why))
			continue
		}
		q.v[k] = kept
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

func (q *query) bad(format string, args ...any) {
	q.errs = append(q.errs, fmt.Errorf(format, args...))
}

// str is the last value of a single-valued parameter.
func (q *query) str(name string) (string, bool) {
	vals := q.v[name]
	if len(vals) == 0 {
		return "", false
	}
	return vals[len(vals)-1], true
}

// strPtr is str as a pointer, nil when absent.
func (q *query) strPtr(name string) *string {
	s, ok := q.str(name)
	if !ok {
		return nil
	}
	return &s
}

// list is every value of a list parameter, comma separated ones split.
func (q *query) list(name string) []string {
	var out []string
	for _, v := range q.v[name] {
		for part := range strings.SplitSeq(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func (q *query) uint(name string, bits int) (uint64, bool) {
	s, ok := q.str(name)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		q.bad("%s=%q: want an integer from 0 to %d", name, s, uint64(1)<<bits-1)
		return 0, false
	}
	return n, true
}

// uintPtr is a uint64 parameter as a pointer, nil when absent or bad.
func (q *query) uintPtr(name string) *uint64 {
	n, ok := q.uint(name, 64)
	if !ok {
		return nil
	}
	return &n
}

func (q *query) uintList(name string) []uint64 {
	var out []uint64
	for _, s := range q.list(name) {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			q.bad("%s: %q is not an id; want ids, repeated or comma separated", name, s)
			return nil
		}
		out = append(out, n)
	}
	return out
}

func (q *query) float(name string) *float64 {
	s, ok := q.str(name)
	if !ok {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		q.bad("%s=%q: want a number", name, s)
		return nil
	}
	return &f
}

func (q *query) bool(name string) *bool {
	s, ok := q.str(name)
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		q.bad("%s=%q: want true or false", name, s)
		return nil
	}
	return &b
}

// oneOf is the value of a single-valued parameter among choices, compared
// without case; it returns the choice as spelled in choices.
func (q *query) oneOf(name string, choices ...string) string {
	s, ok := q.str(name)
	if !ok {
		return ""
	}
	for _, c := range choices {
		if strings.EqualFold(s, c) {
			return c
		}
	}
	q.bad("%s=%q: want one of %s", name, s, strings.Join(choices, ", "))
	return ""
}

// listOf is a list parameter whose values are among choices, compared
// without case, returned as spelled in choices.
func (q *query) listOf(name string, choices ...string) []string {
	var out []string
	for _, s := range q.list(name) {
		i := slices.IndexFunc(choices, func(c string) bool { return strings.EqualFold(s, c) })
		if i < 0 {
			q.bad("%s: %q is not one of %s", name, s, strings.Join(choices, ", "))
			return nil
		}
		out = append(out, choices[i])
	}
	return out
}

// limit is the parsed paging and sorting of a list.
type limit struct {
	page, size int
	retCount   bool
	sortBy     string // one of the endpoint's sort keys, "" for the default order
	desc       bool
}

// limit reads the paging and sorting parameters; sortKeys are the sort_by
// values the endpoint takes.
func (q *query) limit(cfg Config, sortKeys ...string) limit {
	l := limit{page: 1, size: cfg.DefaultPageSize}
	if n, ok := q.uint("page", 32); ok {
		if n == 0 {
			q.bad("page=0: pages start at 1")
		} else {
			l.page = int(n)
		}
	}
	if n, ok := q.uint("size", 32); ok {
		if n == 0 || n > uint64(cfg.MaxPageSize) {
			q.bad("size=%d: want 1 to %d", n, cfg.MaxPageSize)
		} else {
			l.size = int(n)
		}
	}
	if b := q.bool("ret_count"); b != nil {
		l.retCount = *b
	}
	q.bool("randomize")
	q.float("balance")
	l.sortBy = q.oneOf("sort_by", sortKeys...)
	l.desc = q.oneOf("sort_order", "asc", "desc") == "desc"
	return l
}

// window is the [start, end) range of the page among total items.
func (l limit) window(total int) (int, int) {
	if l.size <= 0 || l.page-1 > total/l.size { // also keeps the product below overflow
		return total, total
	}
	start := min((l.page-1)*l.size, total)
	return start, min(start+l.size, total)
}

// params joins parameter name lists.
func params(lists ...[]string) []string {
	var out []string
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// containsFold reports whether s contains sub, without case.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
