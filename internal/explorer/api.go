package explorer

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/registry"
)

// TotalCountHeader carries the number of items matching a list query, all
// pages together, on every list answer (ours).
const TotalCountHeader = "X-Total-Count"

// CountHeader carries the same number when the query has ret_count=true,
// with SizeHeader and PagesHeader, as gridproxy does.
const (
	CountHeader = "Count"
	SizeHeader  = "Size"
	PagesHeader = "Pages"
)

// Handler serves the API and the web page. The paths are gridproxy's
// (swagger at /work/shared/reference/gridproxy); /farms/{id} and
// /twins/{id} are ours.
func (e *Explorer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", e.ping)
	mux.HandleFunc("GET /stats", e.stats)
	mux.HandleFunc("GET /nodes", e.listNodes)
	mux.HandleFunc("GET /nodes/{id}", e.getNode)
	mux.HandleFunc("GET /nodes/{id}/status", e.getNodeStatus)
	mux.HandleFunc("GET /gateways", e.listGateways)
	mux.HandleFunc("GET /gateways/{id}", e.getGateway)
	mux.HandleFunc("GET /gateways/{id}/status", e.getGatewayStatus)
	mux.HandleFunc("GET /farms", e.listFarms)
	mux.HandleFunc("GET /farms/{id}", e.getFarm)
	mux.HandleFunc("GET /twins", e.listTwins)
	mux.HandleFunc("GET /twins/{id}", e.getTwin)
	mux.HandleFunc("GET /contracts", e.listContracts)
	mux.HandleFunc("GET /contracts/{id}", e.getContract)
	mux.HandleFunc("GET /contracts/{id}/bills", e.getContractBills)
	mux.HandleFunc("GET /pricing", e.pricing)
	mux.HandleFunc("GET /public_ips", e.listPublicIPs)
	mux.HandleFunc("GET /ips", e.listPublicIPs)
	e.mountWeb(mux)
	return mux
}

func (e *Explorer) ping(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"ping": "pong"})
}

// stats serves gridproxy's flat totals; the node figures count the nodes
// of the asked statuses (status=up,standby), every node without one.
func (e *Explorer) stats(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r.URL.Query(), "status")
	statuses := q.listOf("status", statusChoices()...)
	s, ok := e.snapshotFor(w, r, q.err())
	if !ok {
		return
	}
	now := e.cfg.Now()
	st := s.nodeTotals(statuses, now)
	st.Farms, st.Twins, st.Contracts = len(s.farms), len(s.twins), len(s.contracts)
	st.PublicIPs, st.FreePublicIPs = s.publicIPs, s.freePublicIPs
	st.ContractsByState = s.contractsByState
	st.Updated = unixSeconds(s.at)
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
	body := make([]byte, 0, 64+len(page)*1536)
	body = append(body, '[')
	for k, i := range page {
		if k > 0 {
			body = append(body, ',')
		}
		body = s.appendNode(body, i, s.meta[i].status(nowNano))
	}
	body = append(body, "]\n"...)
	setCount(w, f.lim, total)
	writeRaw(w, http.StatusOK, body)
}

// setCount writes the total of a list in our header and, when asked with
// ret_count=true, in gridproxy's.
func setCount(w http.ResponseWriter, l limit, total int) {
	h := w.Header()
	h.Set(TotalCountHeader, strconv.Itoa(total))
	if l.retCount {
		h.Set(CountHeader, strconv.Itoa(total))
		h.Set(SizeHeader, strconv.Itoa(l.size))
		h.Set(PagesHeader, strconv.Itoa((total+l.size-1)/l.size))
	}
}

// queryNodes returns the indexes of the page of nodes matching f and how
// many match in all.
func (s *snapshot) queryNodes(f *nodeFilter, now time.Time) ([]int32, int) {
	var country uint32
	if f.country != nil {
		id, ok := s.countryIDs[strings.ToLower(*f.country)]
		if !ok {
			return nil, 0
		}
		country = id
	}
	nowNano := unixNano(now)
	order := s.order(f.sortBy)
	offset := (f.lim.page - 1) * f.lim.size
	page := make([]int32, 0, min(f.lim.size, len(order)))
	total := 0
	text := f.needsEntry()
	// Sorted by status, the nodes are taken in passes, one per status:
	// up, standby, down (gridproxy's order), reversed for desc.
	passes := []string{""}
	if f.sortBy == sortStatus {
		passes = []string{StatusUp, StatusStandby, StatusDown}
		if f.lim.desc {
			slices.Reverse(passes)
		}
	}
	for _, pass := range passes {
		for k := range order {
			i := order[k]
			if f.lim.desc && f.sortBy != sortStatus {
				i = order[len(order)-1-k]
			}
			m := &s.meta[i]
			if !f.match(m) || country != 0 && m.country != country {
				continue
			}
			if text && !f.matchText(&s.nodes[i]) {
				continue
			}
			status := m.status(nowNano)
			if pass != "" && status != pass || len(f.statuses) > 0 && !slices.Contains(f.statuses, status) ||
				!is(f.healthy, status == StatusUp) {
				continue
			}
			if total >= offset && len(page) < f.lim.size {
				page = append(page, i)
			}
			total++
		}
	}
	return page, total
}

// appendNode appends node i as a Node object. Everything but status and
// healthy is encoded once per snapshot.
func (s *snapshot) appendNode(dst []byte, i int32, status string) []byte {
	p := s.nodeJSON[i].Load()
	if p == nil {
		e := &s.nodes[i]
		c, rest := e.parts()
		b, err := json.Marshal(struct {
			nodeCommon
			Total Capacity `json:"total_resources"`
			Used  Capacity `json:"used_resources"`
			nodeRest
		}{c, capacity(e.node.Total), capacity(e.node.Used), rest})
		if err != nil || len(b) < 2 || b[0] != '{' || b[1] == '}' {
			// Cannot happen with these types; keep the answer valid JSON.
			b = fmt.Appendf(nil, `{"nodeId":%d}`, e.node.ID)
		}
		p = &b
		s.nodeJSON[i].Store(p)
	}
	dst = append(dst, `{"status":"`...)
	dst = append(dst, status...)
	dst = append(dst, `","healthy":`...)
	dst = strconv.AppendBool(dst, status == StatusUp)
	dst = append(dst, ',')
	return append(dst, (*p)[1:]...)
}

// nestedNode is node i as /nodes/{id} serves it.
func (s *snapshot) nestedNode(i int32, status string) NodeWithNestedCapacity {
	e := &s.nodes[i]
	c, rest := e.parts()
	return NodeWithNestedCapacity{
		Status: status, Healthy: status == StatusUp, nodeCommon: c, nodeRest: rest,
		Capacity: CapacityResult{Total: capacity(e.node.Total), Used: capacity(e.node.Used)},
	}
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

// nodeByRequest finds the node of the {id} path value; gateway asks for a
// node with a domain.
func (e *Explorer) nodeByRequest(r *http.Request, gateway bool) (*snapshot, int32, error) {
	id, err := pathID(r, 32)
	if err != nil {
		return nil, 0, err
	}
	if err := newQuery(r.URL.Query()).err(); err != nil {
		return nil, 0, err
	}
	s, err := e.current(r.Context())
	if err != nil {
		return nil, 0, err
	}
	i, ok := s.nodeByID[uint32(id)]
	if !ok || gateway && !s.meta[i].domain {
		what := "node"
		if gateway {
			what = "gateway"
		}
		return nil, 0, fmt.Errorf("%s %d: %w", what, id, errNotFound)
	}
	return s, i, nil
}

func (e *Explorer) getNode(w http.ResponseWriter, r *http.Request)    { e.serveNode(w, r, false) }
func (e *Explorer) getGateway(w http.ResponseWriter, r *http.Request) { e.serveNode(w, r, true) }

func (e *Explorer) serveNode(w http.ResponseWriter, r *http.Request, gateway bool) {
	s, i, err := e.nodeByRequest(r, gateway)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.nestedNode(i, s.meta[i].status(unixNano(e.cfg.Now()))))
}

func (e *Explorer) getNodeStatus(w http.ResponseWriter, r *http.Request) { e.serveStatus(w, r, false) }
func (e *Explorer) getGatewayStatus(w http.ResponseWriter, r *http.Request) {
	e.serveStatus(w, r, true)
}

func (e *Explorer) serveStatus(w http.ResponseWriter, r *http.Request, gateway bool) {
	s, i, err := e.nodeByRequest(r, gateway)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, NodeStatus{Status: s.meta[i].status(unixNano(e.cfg.Now()))})
}

func (s *snapshot) farmView(fe *farmEntry, now time.Time) Farm {
	f := &fe.farm
	v := Farm{
		Name: f.Name, FarmID: f.ID, TwinID: f.TwinID, CertificationType: "NotCertified",
		PublicIPs: make([]PublicIP, 0, len(f.PublicIPs)),
		TotalIPs:  len(f.PublicIPs), FreeIPs: fe.freeIPs, UsedIPs: len(f.PublicIPs) - fe.freeIPs, NodeCount: len(fe.nodes),
	}
	for _, ip := range f.PublicIPs {
		v.PublicIPs = append(v.PublicIPs, publicIP(f.ID, ip))
	}
	for _, i := range fe.nodes {
		if s.meta[i].status(unixNano(now)) == StatusUp {
			v.NodesUp++
		}
	}
	return v
}

// farmHasNode reports whether a node of the farm passes the node filter.
func (s *snapshot) farmHasNode(fe *farmEntry, f *nodeFilter, now time.Time) bool {
	nowNano := unixNano(now)
	for _, i := range fe.nodes {
		m := &s.meta[i]
		if f.country != nil && !strings.EqualFold(s.nodes[i].node.Location.Country, *f.country) {
			continue
		}
		if f.match(m) && f.matchText(&s.nodes[i]) &&
			(len(f.statuses) == 0 || slices.Contains(f.statuses, m.status(nowNano))) {
			return true
		}
	}
	return false
}

func (e *Explorer) listFarms(w http.ResponseWriter, r *http.Request) {
	f, err := parseFarmFilter(r.URL.Query(), e.cfg)
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return
	}
	now := e.cfg.Now()
	var matched []*farmEntry
	for _, fe := range s.farms {
		if f.match(fe) && (!f.nodeFilters || s.farmHasNode(fe, &f.nodes, now)) {
			matched = append(matched, fe)
		}
	}
	sortBy(matched, f.lim, func(a, b *farmEntry) int {
		switch f.lim.sortBy {
		case "name":
			return strings.Compare(a.farm.Name, b.farm.Name)
		case "twin_id":
			return cmp.Compare(a.farm.TwinID, b.farm.TwinID)
		case "free_ips":
			return cmp.Compare(a.freeIPs, b.freeIPs)
		case "total_ips":
			return cmp.Compare(len(a.farm.PublicIPs), len(b.farm.PublicIPs))
		case "used_ips":
			return cmp.Compare(len(a.farm.PublicIPs)-a.freeIPs, len(b.farm.PublicIPs)-b.freeIPs)
		}
		return cmp.Compare(a.farm.ID, b.farm.ID) // farm_id, dedicated (never here)
	})
	start, end := f.lim.window(len(matched))
	views := make([]Farm, 0, end-start)
	for _, fe := range matched[start:end] {
		views = append(views, s.farmView(fe, now))
	}
	setCount(w, f.lim, len(matched))
	writeJSON(w, http.StatusOK, views)
}

// writePage answers the page of items the query asked for, with the
// total in the Count header when asked.
func writePage[T any](w http.ResponseWriter, l limit, items []T) {
	start, end := l.window(len(items))
	setCount(w, l, len(items))
	writeJSON(w, http.StatusOK, items[start:end])
}

// sortBy sorts items by cmp when the query asked for an order (else they
// stay by id), reversed for sort_order=desc; ties keep their order.
func sortBy[T any](items []T, l limit, cmp func(a, b T) int) {
	if l.sortBy != "" {
		slices.SortStableFunc(items, cmp)
	}
	if l.desc {
		slices.Reverse(items)
	}
}

// byID reads the {id} of a path that takes no query parameters and the
// current snapshot; on failure it has written the error.
func (e *Explorer) byID(w http.ResponseWriter, r *http.Request, bits int) (uint64, *snapshot, bool) {
	id, err := pathID(r, bits)
	if err == nil {
		err = newQuery(r.URL.Query()).err()
	}
	s, ok := e.snapshotFor(w, r, err)
	return id, s, ok
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
	id, s, ok := e.byID(w, r, 32)
	if !ok {
		return
	}
	fe, ok := s.farmByID[uint32(id)]
	if !ok {
		writeError(w, fmt.Errorf("farm %d: %w", id, errNotFound))
		return
	}
	writeJSON(w, http.StatusOK, s.farmView(fe, e.cfg.Now()))
}

func (e *Explorer) listTwins(w http.ResponseWriter, r *http.Request) {
	f, err := parseTwinFilter(r.URL.Query(), e.cfg)
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return
	}
	matched := []Twin{}
	for _, t := range s.twins {
		if v := twinView(t); f.match(&v) {
			matched = append(matched, v)
		}
	}
	sortBy(matched, f.lim, func(a, b Twin) int {
		switch f.lim.sortBy {
		case "relay":
			return strings.Compare(a.Relay, b.Relay)
		case "public_key":
			return strings.Compare(a.PublicKey, b.PublicKey)
		case "account_id":
			return strings.Compare(a.AccountID, b.AccountID)
		}
		return cmp.Compare(a.TwinID, b.TwinID)
	})
	writePage(w, f.lim, matched)
}

func (e *Explorer) getTwin(w http.ResponseWriter, r *http.Request) {
	id, s, ok := e.byID(w, r, 32)
	if !ok {
		return
	}
	i, ok := s.twinByID[uint32(id)]
	if !ok {
		writeError(w, fmt.Errorf("twin %d: %w", id, errNotFound))
		return
	}
	writeJSON(w, http.StatusOK, twinView(s.twins[i]))
}

// contractFarm is the farm of a node or rent contract: where its public
// IPs were reserved, else its node's.
func (s *snapshot) contractFarm(c *registry.Contract) *registry.Farm {
	id := c.FarmID
	if id == 0 {
		i, ok := s.nodeByID[c.NodeID]
		if !ok || c.Type == registry.TypeName {
			return nil
		}
		id = s.nodes[i].node.FarmID
	}
	if fe, ok := s.farmByID[id]; ok {
		return &fe.farm
	}
	return nil
}

// contractView is contract c with its details.
func (s *snapshot) contractView(c *registry.Contract) Contract {
	v := Contract{
		ContractID: c.ID, TwinID: c.TwinID, State: contractState(c.State), CreatedAt: unixSeconds(c.Created),
		Type: c.Type, UpdatedAt: unixSeconds(c.Updated), Used: capacity(c.Used), PublicIPs: c.PublicIPs, Proof: c.Proof,
		BillingState: c.BillingState,
	}
	if c.State == registry.StateCreated && c.BillingState == billing.StateGrace {
		v.State = ContractGracePeriod
	}
	if v.PublicIPs == nil {
		v.PublicIPs = []registry.PublicIP{}
	}
	var farmID uint32
	var farmName string
	if f := s.contractFarm(c); f != nil {
		farmID, farmName = f.ID, f.Name
	}
	switch c.Type {
	case registry.TypeNode:
		v.Details = NodeContractDetails{NodeID: c.NodeID, DeploymentData: c.Metadata, DeploymentHash: c.DeploymentHash,
			NumberOfPublicIPs: c.PublicIPsCount, FarmName: farmName, FarmID: farmID}
	case registry.TypeRent:
		v.Details = RentContractDetails{NodeID: c.NodeID, FarmName: farmName, FarmID: farmID}
	default:
		v.Details = NameContractDetails{Name: c.Name}
	}
	return v
}

func (e *Explorer) listContracts(w http.ResponseWriter, r *http.Request) {
	f, err := parseContractFilter(r.URL.Query(), e.cfg)
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return
	}
	var matched []*registry.Contract
	for i := range s.contracts {
		c := &s.contracts[i]
		if f.match(c, s.contractFarm(c)) {
			matched = append(matched, c)
		}
	}
	sortBy(matched, f.lim, func(a, b *registry.Contract) int {
		switch f.lim.sortBy {
		case "twin_id":
			return cmp.Compare(a.TwinID, b.TwinID)
		case "type":
			return strings.Compare(a.Type, b.Type)
		case "state":
			return strings.Compare(contractState(a.State), contractState(b.State))
		case "created_at":
			return a.Created.Compare(b.Created)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	start, end := f.lim.window(len(matched))
	views := make([]Contract, 0, end-start)
	for _, c := range matched[start:end] {
		views = append(views, s.contractView(c))
	}
	setCount(w, f.lim, len(matched))
	writeJSON(w, http.StatusOK, views)
}

// contractByRequest finds the contract of the {id} path value.
func (e *Explorer) contractByRequest(w http.ResponseWriter, r *http.Request, allowed ...string) (*snapshot, *registry.Contract, *query, bool) {
	id, err := pathID(r, 64)
	q := newQuery(r.URL.Query(), allowed...)
	if err == nil {
		err = q.err()
	}
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return nil, nil, nil, false
	}
	i, ok := slices.BinarySearchFunc(s.contracts, id, func(c registry.Contract, id uint64) int { return cmp.Compare(c.ID, id) })
	if !ok {
		writeError(w, fmt.Errorf("contract %d: %w", id, errNotFound))
		return nil, nil, nil, false
	}
	return s, &s.contracts[i], q, true
}

func (e *Explorer) getContract(w http.ResponseWriter, r *http.Request) {
	s, c, _, ok := e.contractByRequest(w, r)
	if ok {
		writeJSON(w, http.StatusOK, s.contractView(c))
	}
}

// getContractBills answers gridproxy's bill reports of a contract
// (billing.go).
func (e *Explorer) getContractBills(w http.ResponseWriter, r *http.Request) {
	_, c, q, ok := e.contractByRequest(w, r, limitParams...)
	if !ok {
		return
	}
	l := q.limit(e.cfg)
	if err := q.err(); err != nil {
		writeError(w, err)
		return
	}
	e.serveBills(w, r, c.ID, l)
}

func (e *Explorer) listPublicIPs(w http.ResponseWriter, r *http.Request) {
	f, err := parseIPFilter(r.URL.Query(), e.cfg)
	s, ok := e.snapshotFor(w, r, err)
	if !ok {
		return
	}
	matched := []PublicIP{}
	for _, fe := range s.farms {
		for _, ip := range fe.farm.PublicIPs {
			if v := publicIP(fe.farm.ID, ip); f.match(&v) {
				matched = append(matched, v)
			}
		}
	}
	sortBy(matched, f.lim, func(a, b PublicIP) int {
		switch f.lim.sortBy {
		case "ip":
			return strings.Compare(a.IP, b.IP)
		case "contract_id":
			return cmp.Compare(a.ContractID, b.ContractID)
		}
		return cmp.Compare(a.FarmID, b.FarmID)
	})
	writePage(w, f.lim, matched)
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
