package explorer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/registry"
)

// TotalCountHeader carries the number of items matching a list query, all
// pages together.
const TotalCountHeader = "X-Total-Count"

// NodeView is a node as /nodes serves it: the registry record plus its
// status, free capacity and farm.
type NodeView struct {
	registry.Node
	Status string `json:"status"`
	// Free is total - used - reserved (§10.2 reservations).
	Free        registry.Resources `json:"free_resources"`
	FarmName    string             `json:"farm_name"`
	FarmFreeIPs int                `json:"farm_free_ips"`
}

// FarmView is a farm as /farms serves it.
type FarmView struct {
	registry.Farm
	TotalIPs  int `json:"total_ips"`
	FreeIPs   int `json:"free_ips"`
	NodeCount int `json:"node_count"`
	NodesUp   int `json:"nodes_up"`
}

// Stats is what /stats serves.
type Stats struct {
	Nodes            int                `json:"nodes"`
	NodesByStatus    map[string]int     `json:"nodes_by_status"`
	Farms            int                `json:"farms"`
	Twins            int                `json:"twins"`
	Contracts        int                `json:"contracts"`
	ContractsByState map[string]int     `json:"contracts_by_state"`
	Countries        int                `json:"countries"`
	PublicIPs        int                `json:"public_ips"`
	FreePublicIPs    int                `json:"free_public_ips"`
	Total            registry.Resources `json:"total_resources"`
	Used             registry.Resources `json:"used_resources"`
	Free             registry.Resources `json:"free_resources"`
	// Updated is when the explorer last read the registry.
	Updated time.Time `json:"updated"`
	// Store is the state of the grid's store, when the explorer knows it.
	Store *StoreStatus `json:"store,omitempty"`
}

// StoreStatus says whether the grid's store takes writes, and why not.
type StoreStatus struct {
	Writable bool   `json:"writable"`
	Reason   string `json:"reason,omitempty"` // "0.5 MiB free, reserve 0.8 MiB"
}

// Handler serves the API and the web page.
func (e *Explorer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", e.ping)
	mux.HandleFunc("GET /stats", e.stats)
	mux.HandleFunc("GET /nodes", e.listNodes)
	mux.HandleFunc("GET /nodes/{id}", e.getNode)
	mux.HandleFunc("GET /nodes/{id}/status", e.getNodeStatus)
	mux.HandleFunc("GET /gateways", e.listGateways)
	mux.HandleFunc("GET /farms", e.listFarms)
	mux.HandleFunc("GET /farms/{id}", e.getFarm)
	mux.HandleFunc("GET /twins/{id}", e.getTwin)
	mux.HandleFunc("GET /contracts", e.listContracts)
	mux.HandleFunc("GET /contracts/{id}", e.getContract)
	e.mountWeb(mux)
	return mux
}

func (e *Explorer) ping(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"ping": "pong"})
}

func (e *Explorer) stats(w http.ResponseWriter, r *http.Request) {
	s, ok := e.snapshotFor(w, r, newQuery(r.URL.Query()).err())
	if !ok {
		return
	}
	now := e.cfg.Now()
	st := s.totals
	st.Updated = s.at
	st.NodesByStatus = map[string]int{StatusUp: 0, StatusStandby: 0, StatusDown: 0}
	nowNano := unixNano(now)
	for i := range s.meta {
		st.NodesByStatus[s.meta[i].status(nowNano)]++
	}
	if e.cfg.Store != nil {
		st.Store = &StoreStatus{Writable: true}
		if err := e.cfg.Store.CheckStore(); err != nil {
			st.Store = &StoreStatus{Reason: err.Error()}
		}
	}
	writeJSON(w, http.StatusOK, st)
}

func (e *Explorer) listNodes(w http.ResponseWriter, r *http.Request) {
	f, err := parseNodeFilter(r.URL.Query(), e.cfg)
	if err != nil {
		writeError(w, err)
		return
	}
	e.serveNodes(w, r, &f)
}

// listGateways is /nodes restricted to nodes with a domain in their public
// config, the ones that can serve gateway workloads.
func (e *Explorer) listGateways(w http.ResponseWriter, r *http.Request) {
	f, err := parseNodeFilter(r.URL.Query(), e.cfg)
	if err == nil && f.domain != nil && !*f.domain {
		err = fmt.Errorf("%w: domain=false: gateways all have a domain", errBadQuery)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	domain := true
	f.domain = &domain
	e.serveNodes(w, r, &f)
}

func (e *Explorer) serveNodes(w http.ResponseWriter, r *http.Request, f *nodeFilter) {
	s, ok := e.snapshotFor(w, r, nil)
	if !ok {
		return
	}
	now := e.cfg.Now()
	page, total := s.queryNodes(f, now)
	nowNano := unixNano(now)
	body := make([]byte, 0, 64+len(page)*1024)
	body = append(body, '[')
	for k, i := range page {
		if k > 0 {
			body = append(body, ',')
		}
		body = s.appendNode(body, i, s.meta[i].status(nowNano))
	}
	body = append(body, "]\n"...)
	w.Header().Set(TotalCountHeader, strconv.Itoa(total))
	writeRaw(w, http.StatusOK, body)
}

// queryNodes returns the indexes of the page of nodes matching f and how
// many match in all.
func (s *snapshot) queryNodes(f *nodeFilter, now time.Time) ([]int32, int) {
	var country uint32
	if f.country != "" {
		id, ok := s.countryIDs[f.country]
		if !ok {
			return nil, 0
		}
		country = id
	}
	nowNano := unixNano(now)
	order := s.order(f.sortBy)
	offset := (f.page.page - 1) * f.page.size
	page := make([]int32, 0, min(f.page.size, len(order)))
	total := 0
	for k := range order {
		i := order[k]
		if f.desc {
			i = order[len(order)-1-k]
		}
		m := &s.meta[i]
		if !f.match(m) || country != 0 && m.country != country {
			continue
		}
		if f.status != "" && m.status(nowNano) != f.status {
			continue
		}
		if total >= offset && len(page) < f.page.size {
			page = append(page, i)
		}
		total++
	}
	return page, total
}

// nodeJSONView is NodeView without the status, which changes with the clock;
// its encoding is cached per snapshot.
type nodeJSONView struct {
	registry.Node
	Free        registry.Resources `json:"free_resources"`
	FarmName    string             `json:"farm_name"`
	FarmFreeIPs int                `json:"farm_free_ips"`
}

// appendNode appends node i as a NodeView object.
func (s *snapshot) appendNode(dst []byte, i int32, status string) []byte {
	p := s.nodeJSON[i].Load()
	if p == nil {
		e := &s.nodes[i]
		v := nodeJSONView{Node: *e.node, Free: e.free, FarmFreeIPs: e.freeIPs()}
		if e.farm != nil {
			v.FarmName = e.farm.farm.Name
		}
		b, err := json.Marshal(v)
		if err != nil || len(b) < 2 || b[0] != '{' || b[1] == '}' {
			// Cannot happen with these types; keep the answer valid JSON.
			b = fmt.Appendf(nil, `{"id":%d}`, e.node.ID)
		}
		p = &b
		s.nodeJSON[i].Store(p)
	}
	dst = append(dst, `{"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `",`...)
	return append(dst, (*p)[1:]...)
}

// pathID reads the {id} path value.
func pathID(r *http.Request, bits int) (uint64, error) {
	s := r.PathValue("id")
	id, err := strconv.ParseUint(s, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: id %q: want an integer from 0 to %d", errBadQuery, s, uint64(1)<<bits-1)
	}
	return id, nil
}

// errNotFound answers 404.
var errNotFound = errors.New("not found")

func (e *Explorer) getNode(w http.ResponseWriter, r *http.Request) {
	s, i, ok := byPathID(e, w, r, 32, "node", (*snapshot).node)
	if !ok {
		return
	}
	writeRaw(w, http.StatusOK, append(s.appendNode(nil, i, s.meta[i].status(unixNano(e.cfg.Now()))), '\n'))
}

func (e *Explorer) getNodeStatus(w http.ResponseWriter, r *http.Request) {
	s, i, ok := byPathID(e, w, r, 32, "node", (*snapshot).node)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": s.meta[i].status(unixNano(e.cfg.Now()))})
}

func (s *snapshot) farmView(fe *farmEntry, now time.Time) FarmView {
	v := FarmView{Farm: fe.farm, TotalIPs: len(fe.farm.PublicIPs), FreeIPs: fe.freeIPs, NodeCount: len(fe.nodes)}
	for _, i := range fe.nodes {
		if s.meta[i].status(unixNano(now)) == StatusUp {
			v.NodesUp++
		}
	}
	return v
}

func (e *Explorer) listFarms(w http.ResponseWriter, r *http.Request) {
	f, err := parseFarmFilter(r.URL.Query(), e.cfg)
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return
	}
	var matched []*farmEntry
	for _, fe := range s.farms {
		if f.match(fe) {
			matched = append(matched, fe)
		}
	}
	start, end := f.page.window(len(matched))
	now := e.cfg.Now()
	views := make([]FarmView, 0, end-start)
	for _, fe := range matched[start:end] {
		views = append(views, s.farmView(fe, now))
	}
	w.Header().Set(TotalCountHeader, strconv.Itoa(len(matched)))
	writeJSON(w, http.StatusOK, views)
}

// byPathID reads the {id} of a path that takes no query parameters, and
// finds it with find in the current snapshot; on failure (a bad id or
// query, no snapshot, or "<kind> <id>: not found") it has written the
// error.
func byPathID[T any](e *Explorer, w http.ResponseWriter, r *http.Request, bits int, kind string, find func(*snapshot, uint64) (T, bool)) (*snapshot, T, bool) {
	var zero T
	id, err := pathID(r, bits)
	if err == nil {
		err = newQuery(r.URL.Query()).err()
	}
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return nil, zero, false
	}
	v, ok := find(s, id)
	if !ok {
		writeError(w, fmt.Errorf("%s %d: %w", kind, id, errNotFound))
		return nil, zero, false
	}
	return s, v, true
}

// snapshotFor reads the current snapshot for a request whose parsing gave
// err; on failure (err, or no snapshot) it has written the error.
func (e *Explorer) snapshotFor(w http.ResponseWriter, r *http.Request, err error) (*snapshot, bool) {
	if err == nil {
		var s *snapshot
		if s, err = e.current(r.Context()); err == nil {
			return s, true
		}
	}
	writeError(w, err)
	return nil, false
}

func (e *Explorer) getFarm(w http.ResponseWriter, r *http.Request) {
	s, fe, ok := byPathID(e, w, r, 32, "farm", (*snapshot).farm)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.farmView(fe, e.cfg.Now()))
}

func (e *Explorer) getTwin(w http.ResponseWriter, r *http.Request) {
	s, i, ok := byPathID(e, w, r, 32, "twin", (*snapshot).twin)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.twins[i])
}

func (e *Explorer) listContracts(w http.ResponseWriter, r *http.Request) {
	f, err := parseContractFilter(r.URL.Query(), e.cfg)
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return
	}
	matched := []registry.Contract{}
	for i := range s.contracts {
		if f.match(&s.contracts[i]) {
			matched = append(matched, s.contracts[i])
		}
	}
	start, end := f.page.window(len(matched))
	w.Header().Set(TotalCountHeader, strconv.Itoa(len(matched)))
	writeJSON(w, http.StatusOK, matched[start:end])
}

func (e *Explorer) getContract(w http.ResponseWriter, r *http.Request) {
	s, i, ok := byPathID(e, w, r, 64, "contract", (*snapshot).contract)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, s.contracts[i])
}

// apiError is the body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, errBadQuery):
		code = http.StatusBadRequest
	case errors.Is(err, errNotFound):
		code = http.StatusNotFound
	case errors.Is(err, errNoSnapshot):
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, apiError{Error: strings.ReplaceAll(err.Error(), "\n", "; ")})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		body = []byte(`{"error":"encoding response"}`)
	}
	writeRaw(w, code, append(body, '\n'))
}

// writeRaw answers with a JSON body already encoded.
func writeRaw(w http.ResponseWriter, code int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
