package explorer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// These tests speak to the explorer as gridproxy's clients do, over HTTP,
// and check the answers against testdata/gridproxy-swagger.yaml (the
// OpenAPI file gridproxy v0.15.18 publishes, copied unchanged) and against
// structs whose JSON tags follow tfgrid-sdk-go's grid-proxy/pkg/types. The
// expected values come from the fixture (source_test.go), worked out by
// hand.

// gp* are gridproxy's types as its Go client decodes them: only the JSON
// tags matter. Unknown fields (our extras) are ignored, as there.
type gpCapacity struct {
	CRU uint64 `json:"cru"`
	SRU uint64 `json:"sru"`
	HRU uint64 `json:"hru"`
	MRU uint64 `json:"mru"`
}

type gpPublicConfig struct {
	Domain string `json:"domain"`
	Gw4    string `json:"gw4"`
	Gw6    string `json:"gw6"`
	Ipv4   string `json:"ipv4"`
	Ipv6   string `json:"ipv6"`
}

type gpNode struct {
	ID             string     `json:"id"`
	NodeID         int        `json:"nodeId"`
	FarmID         int        `json:"farmId"`
	FarmName       string     `json:"farmName"`
	TwinID         int        `json:"twinId"`
	Country        string     `json:"country"`
	City           string     `json:"city"`
	Uptime         int64      `json:"uptime"`
	Created        int64      `json:"created"`
	UpdatedAt      int64      `json:"updatedAt"`
	TotalResources gpCapacity `json:"total_resources"`
	UsedResources  gpCapacity `json:"used_resources"`
	Capacity       struct {
		Total gpCapacity `json:"total_resources"`
		Used  gpCapacity `json:"used_resources"`
	} `json:"capacity"`
	Location struct {
		Country   string   `json:"country"`
		City      string   `json:"city"`
		Longitude *float64 `json:"longitude"`
		Latitude  *float64 `json:"latitude"`
	} `json:"location"`
	PublicConfig   gpPublicConfig `json:"publicConfig"`
	Status         string         `json:"status"`
	Dedicated      bool           `json:"dedicated"`
	RentContractID uint           `json:"rentContractId"`
	Rented         bool           `json:"rented"`
	Rentable       bool           `json:"rentable"`
	RentedByTwinID uint           `json:"rentedByTwinId"`
	Power          struct {
		State  string `json:"state"`
		Target string `json:"target"`
	} `json:"power"`
	Healthy     bool     `json:"healthy"`
	FarmFreeIps uint     `json:"farm_free_ips"`
	Features    []string `json:"features"`
}

type gpPublicIP struct {
	ID         string `json:"id"`
	IP         string `json:"ip"`
	Gateway    string `json:"gateway"`
	ContractID uint64 `json:"contract_id"`
	FarmID     uint64 `json:"farm_id"`
}

type gpFarm struct {
	Name      string       `json:"name"`
	FarmID    int          `json:"farmId"`
	TwinID    int          `json:"twinId"`
	Dedicated bool         `json:"dedicated"`
	PublicIps []gpPublicIP `json:"publicIps"`
}

type gpTwin struct {
	TwinID    uint   `json:"twinId"`
	AccountID string `json:"accountId"`
	Relay     string `json:"relay"`
	PublicKey string `json:"publicKey"`
}

type gpContract struct {
	ContractID uint            `json:"contract_id"`
	TwinID     uint            `json:"twin_id"`
	State      string          `json:"state"`
	CreatedAt  uint            `json:"created_at"`
	Type       string          `json:"type"`
	Details    json.RawMessage `json:"details"`
}

type gpNodeContractDetails struct {
	NodeID            uint   `json:"nodeId"`
	DeploymentData    string `json:"deployment_data"`
	DeploymentHash    string `json:"deployment_hash"`
	NumberOfPublicIps uint   `json:"number_of_public_ips"`
	FarmName          string `json:"farm_name"`
	FarmID            uint64 `json:"farm_id"`
}

type gpStats struct {
	Nodes             int64            `json:"nodes"`
	Farms             int64            `json:"farms"`
	Countries         int64            `json:"countries"`
	TotalCRU          int64            `json:"totalCru"`
	TotalSRU          int64            `json:"totalSru"`
	TotalMRU          int64            `json:"totalMru"`
	TotalHRU          int64            `json:"totalHru"`
	PublicIPs         int64            `json:"publicIps"`
	AccessNodes       int64            `json:"accessNodes"`
	Gateways          int64            `json:"gateways"`
	Twins             int64            `json:"twins"`
	Contracts         int64            `json:"contracts"`
	NodesDistribution map[string]int64 `json:"nodesDistribution"`
	DedicatedNodes    int64            `json:"dedicatedNodes"`
}

// swagger is the parsed OpenAPI file.
type swagger struct {
	Definitions map[string]map[string]any `json:"definitions"`
	Paths       map[string]map[string]struct {
		Parameters []struct {
			Name string `json:"name"`
			In   string `json:"in"`
		} `json:"parameters"`
	} `json:"paths"`
}

func loadSwagger(t *testing.T) *swagger {
	t.Helper()
	raw, err := os.ReadFile("testdata/gridproxy-swagger.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	var sw swagger
	if err := json.Unmarshal(js, &sw); err != nil {
		t.Fatal(err)
	}
	return &sw
}

// nullable are the swagger fields gridproxy's Go types hold as pointers:
// they may be null.
var nullable = map[string]bool{"types.Location.latitude": true, "types.Location.longitude": true}

// checkSchema checks that v (decoded with UseNumber) has every property
// the swagger definition lists, each of the listed type, recursively.
func (sw *swagger) checkSchema(t *testing.T, where string, v any, schema map[string]any, def string) {
	t.Helper()
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/definitions/")
		sw.checkSchema(t, where, v, sw.Definitions[name], name)
		return
	}
	typ, _ := schema["type"].(string)
	switch typ {
	case "":
		return // details: {} is any value
	case "object":
		obj, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: got %T, want an object (%s)", where, v, def)
			return
		}
		props, _ := schema["properties"].(map[string]any)
		for name, p := range props {
			pv, ok := obj[name]
			if !ok {
				t.Errorf("%s: %s is missing (%s)", where, name, def)
				continue
			}
			if pv == nil && nullable[def+"."+name] {
				continue
			}
			sw.checkSchema(t, where+"."+name, pv, p.(map[string]any), def)
		}
		if ap, ok := schema["additionalProperties"].(map[string]any); ok {
			for k, pv := range obj {
				sw.checkSchema(t, where+"["+k+"]", pv, ap, def)
			}
		}
	case "array":
		arr, ok := v.([]any)
		if !ok {
			t.Errorf("%s: got %T (%v), want an array (%s)", where, v, v, def)
			return
		}
		for i, item := range arr {
			sw.checkSchema(t, fmt.Sprintf("%s[%d]", where, i), item, schema["items"].(map[string]any), def)
		}
	case "integer":
		n, ok := v.(json.Number)
		if _, err := strconv.ParseInt(string(n), 10, 64); !ok || err != nil {
			t.Errorf("%s: got %T %v, want an integer (%s)", where, v, v, def)
		}
	case "number":
		if _, ok := v.(json.Number); !ok {
			t.Errorf("%s: got %T %v, want a number (%s)", where, v, v, def)
		}
	case "string":
		if _, ok := v.(string); !ok {
			t.Errorf("%s: got %T %v, want a string (%s)", where, v, v, def)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			t.Errorf("%s: got %T %v, want a boolean (%s)", where, v, v, def)
		}
	default:
		t.Fatalf("%s: swagger type %q not handled", where, typ)
	}
}

// gpServer is the explorer over the fixture on a loopback HTTP server.
func gpServer(t *testing.T) string {
	srv := httptest.NewServer(newTestExplorer(t, fixture()).Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// gpGet GETs base+path, wants 200 and decodes the body into out; it
// returns the raw body and the headers.
func gpGet(t *testing.T, base, path string, out any) ([]byte, http.Header) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d %s, want 200", path, resp.StatusCode, body)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("GET %s: decoding %s: %v", path, body, err)
		}
	}
	return body, resp.Header
}

// TestGridproxySchema: every endpoint of the swagger that our grid has
// data for answers with every field the swagger lists, of its type.
func TestGridproxySchema(t *testing.T) {
	sw := loadSwagger(t)
	base := gpServer(t)
	tests := []struct {
		path, def string
		list      bool
	}{
		{"/nodes", "types.Node", true},
		{"/nodes/1", "types.NodeWithNestedCapacity", false},
		{"/nodes/7", "types.NodeWithNestedCapacity", false},
		{"/gateways", "types.Node", true},
		{"/gateways/1", "types.NodeWithNestedCapacity", false},
		{"/farms", "types.Farm", true},
		{"/twins", "types.Twin", true},
		{"/contracts", "types.Contract", true},
		{"/contracts/1", "types.Contract", false},
		{"/contracts/1/bills", "types.ContractBilling", true},
		{"/ips", "types.PublicIP", true},
		{"/public_ips", "types.PublicIP", true},
		// The swagger says an array; gridproxy serves one object and its
		// client decodes one types.Stats.
		{"/stats", "types.Stats", false},
		{"/ping", "explorer.PingMessage", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			body, _ := gpGet(t, base, tt.path, nil)
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.UseNumber()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			schema := map[string]any{"$ref": "#/definitions/" + tt.def}
			if tt.list {
				arr, ok := v.([]any)
				if !ok || len(arr) == 0 && tt.def != "types.ContractBilling" {
					t.Fatalf("got %s, want a non-empty array", body)
				}
				schema = map[string]any{"type": "array", "items": schema}
			}
			sw.checkSchema(t, tt.path, v, schema, tt.def)
		})
	}
}

// TestGridproxySwaggerCoverage: every path and query parameter the swagger
// lists is either served or named here with the reason it is not.
func TestGridproxySwaggerCoverage(t *testing.T) {
	sw := loadSwagger(t)
	notServed := map[string]string{
		"/nodes/{node_id}/statistics":  "asked live of the node over RMB; not the explorer's",
		"/nodes/{node_id}/gpu":         "asked live of the node over RMB; our nodes have no GPUs",
		"/twins/{twin_id}/consumption": "not served: a twin's bills are per contract (/contracts/{id}/bills), its balance and ledger in the registry (zosctl balance --ledger)",
	}
	unsupportedParams := map[string]bool{"region": true}
	base := gpServer(t)
	var paths []string
	for p := range sw.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			url := strings.NewReplacer("{node_id}", "1", "{contract_id}", "1", "{twin_id}", "20").Replace(p)
			resp, err := http.Get(base + url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if why, ok := notServed[p]; ok {
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("got %d for a path said not served (%s)", resp.StatusCode, why)
				}
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("got %d, want 200", resp.StatusCode)
			}
			// Each query parameter is known: a value of its type gives 200,
			// or 400 naming it for the few our registry has no data for.
			for _, prm := range sw.Paths[p]["get"].Parameters {
				if prm.In != "query" {
					continue
				}
				value := sampleValue(prm.Name)
				resp, err := http.Get(base + url + "?" + prm.Name + "=" + value)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				want := http.StatusOK
				if unsupportedParams[prm.Name] {
					want = http.StatusBadRequest
				}
				if resp.StatusCode != want || want != 200 && !strings.Contains(string(body), prm.Name) {
					t.Errorf("%s=%s: got %d %s, want %d", prm.Name, value, resp.StatusCode, body, want)
				}
			}
		})
	}
}

// sampleValue is a valid value for a swagger query parameter.
func sampleValue(name string) string {
	switch name {
	case "status", "node_status":
		return "up"
	case "sort_by":
		return "" // per endpoint: tested in TestGridproxyLists
	case "sort_order":
		return "desc"
	case "state":
		return "Created"
	case "type":
		return "node"
	case "certification_type":
		return "DIY"
	case "ip", "gateway", "name", "name_contains", "city", "country", "farm_name", "region",
		"account_id", "relay", "public_key", "deployment_data", "deployment_hash", "stellar_address",
		"gpu_device_id", "gpu_device_name", "gpu_vendor_id", "gpu_vendor_name", "features", "node_features":
		return "x"
	case "balance", "price_min", "price_max":
		return "1.5"
	case "farm_ids":
		return "1,2"
	case "page", "size":
		return "1"
	}
	if strings.HasPrefix(name, "free") && name != "free_ips" && name != "free" || strings.HasPrefix(name, "total_") ||
		strings.HasPrefix(name, "node_free") || name == "node_total_cru" {
		return "1024"
	}
	for _, b := range []string{"ret_count", "randomize", "healthy", "has_ipv6", "ipv4", "ipv6", "domain", "dedicated",
		"in_dedicated_farm", "rentable", "rented", "has_gpu", "gpu_available", "free", "node_has_gpu",
		"node_has_ipv6", "node_certified"} {
		if name == b {
			return "true"
		}
	}
	return "1" // ids and counts
}

func gpNodeIDs(nodes []gpNode) []int {
	ids := []int{}
	for _, n := range nodes {
		ids = append(ids, n.NodeID)
	}
	return ids
}

// TestGridproxyNodes: /nodes and /gateways with gridproxy's filters,
// list parameters as its client sends them (repeated ids, comma separated
// strings), paging with ret_count and the Count header.
func TestGridproxyNodes(t *testing.T) {
	base := gpServer(t)
	g := func(n uint64) string { return strconv.FormatUint(n*gb, 10) }
	tests := []struct {
		query string
		want  []int
	}{
		{"", []int{1, 2, 3, 4, 5, 6, 7}},
		{"farm_ids=1&farm_ids=3", []int{1, 2, 5, 6}},
		{"farm_ids=1,3", []int{1, 2, 5, 6}},
		{"status=up", []int{1, 6, 7}},
		{"status=up,standby", []int{1, 3, 5, 6, 7}},
		{"status=down&status=standby", []int{2, 3, 4, 5}},
		{"healthy=true", []int{1, 6, 7}},
		{"free_mru=" + g(14), []int{2, 3, 5, 7}},
		{"free_sru=" + g(200), []int{1, 2, 6}},
		{"free_hru=" + g(2001), []int{2}},
		{"total_cru=32", []int{2, 5}},
		{"total_mru=" + g(32), []int{2, 3, 5}},
		{"total_sru=" + g(500), []int{1, 2}},
		{"total_hru=" + g(4096), []int{2}},
		{"free_ips=2", []int{1, 2}},
		{"ipv4=true", []int{1}},
		{"ipv6=true", []int{6}},
		{"has_ipv6=true", []int{6}},
		{"domain=true", []int{1, 4}},
		{"country=nl", []int{3, 4}},
		{"country_contains=e", []int{1, 2, 5, 6}},
		{"city=ghent", []int{1}},
		{"city_contains=en", []int{1}},
		{"farm_name=ALPHA", []int{1, 2}},
		{"farm_name_contains=mm", []int{5, 6}},
		{"node_id=4", []int{4}},
		{"node_ids=4&node_ids=6", []int{4, 6}},
		{"excluded=1&excluded=2", []int{3, 4, 5, 6, 7}},
		{"twin_id=103", []int{3}},
		{"owned_by=11", []int{3, 4}},
		{"rented=true", []int{1}},
		{"rented_by=21", []int{1}},
		{"rentable=true", []int{2, 3, 4, 5, 7}},
		{"dedicated=true", []int{1, 2, 3, 4, 5, 7}},
		{"rentable_or_rented_by=21", []int{1, 2, 3, 4, 5, 7}},
		{"available_for=20", []int{2, 3, 4, 5, 6, 7}},
		{"available_for=21", []int{1, 2, 3, 4, 5, 6, 7}},
		{"in_dedicated_farm=true", []int{}},
		{"certification_type=Certified", []int{}},
		{"certification_type=DIY", []int{1, 2, 3, 4, 5, 6, 7}},
		{"has_gpu=true", []int{}},
		{"has_gpu=false&status=up", []int{1, 6, 7}},
		{"price_min=1", []int{}},
		{"ret_count=true&randomize=true&balance=10&status=standby", []int{3, 5}},
		{"sort_by=status", []int{1, 6, 7, 3, 5, 2, 4}},
		{"sort_by=status&sort_order=desc", []int{2, 4, 3, 5, 1, 6, 7}},
		{"sort_by=total_mru&sort_order=desc&size=3", []int{5, 2, 3}},
		{"sort_by=used_sru&sort_order=desc&size=2", []int{1, 6}},
		{"sort_by=country", []int{7, 1, 5, 6, 3, 4, 2}},
		{"sort_by=rent_contract_id&sort_order=desc&size=1", []int{1}},
		{"sort_by=updated_at&sort_order=desc", []int{7, 5, 1, 6, 2, 3, 4}},
		{"size=3&page=3", []int{7}},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			var nodes []gpNode
			gpGet(t, base, "/nodes?"+tt.query, &nodes)
			if got := gpNodeIDs(nodes); !slices.Equal(got, tt.want) {
				t.Errorf("got nodes %v, want %v", got, tt.want)
			}
		})
	}

	// The Count header carries the total only with ret_count=true.
	var nodes []gpNode
	_, h := gpGet(t, base, "/nodes?status=up&size=2&ret_count=true", &nodes)
	if got := h.Get("Count"); got != "3" || len(nodes) != 2 || h.Get("Pages") != "2" {
		t.Errorf("ret_count=true: got Count %q Pages %q and %d nodes, want 3, 2 and 2", got, h.Get("Pages"), len(nodes))
	}
	if _, h := gpGet(t, base, "/nodes?status=up", nil); h.Get("Count") != "" {
		t.Errorf("without ret_count: got Count %q, want none", h.Get("Count"))
	}

	var gws []gpNode
	gpGet(t, base, "/gateways?status=down", &gws)
	if got := gpNodeIDs(gws); !slices.Equal(got, []int{4}) {
		t.Errorf("gateways down: got %v, want [4]", got)
	}
}

// TestGridproxyNodeFields: one node's fields in gridproxy's names, types
// and units (ids as the types say, unix seconds, bytes, power as
// {state,target}, nested capacity on /nodes/{id}).
func TestGridproxyNodeFields(t *testing.T) {
	base := gpServer(t)
	var n gpNode
	gpGet(t, base, "/nodes/1", &n)
	want := gpNode{ID: "1", NodeID: 1, FarmID: 1, FarmName: "alpha", TwinID: 101, Country: "BE", City: "Ghent",
		Uptime: 3600, Created: testNow.Add(-30 * 24 * 3600e9).Unix(), UpdatedAt: testNow.Add(-10 * 60e9).Unix(),
		Status: "up", Healthy: true, Dedicated: true, Rented: true, RentContractID: 4, RentedByTwinID: 21, FarmFreeIps: 2,
		PublicConfig: gpPublicConfig{Ipv4: "185.0.0.10/24", Gw4: "185.0.0.1", Domain: "n1.example.com"},
		Features:     []string{"zdb", "zmachine", "network", "wireguard"}}
	want.Capacity.Total = gpCapacity{CRU: 8, MRU: 16 * gb, SRU: 500 * gb}
	want.Capacity.Used = gpCapacity{CRU: 2, MRU: 4 * gb, SRU: 100 * gb}
	want.Location.Country, want.Location.City = "BE", "Ghent"
	lat, long := 51.05, 3.72
	want.Location.Latitude, want.Location.Longitude = &lat, &long
	want.Power.State, want.Power.Target = "Up", "Up"
	if n.Location.Latitude == nil || n.Location.Longitude == nil ||
		*n.Location.Latitude != lat || *n.Location.Longitude != long {
		t.Errorf("/nodes/1: got coordinates %v, %v, want %v, %v", n.Location.Latitude, n.Location.Longitude, lat, long)
	}
	n.Location.Latitude, n.Location.Longitude, want.Location.Latitude, want.Location.Longitude = nil, nil, nil, nil
	if got, w := fmt.Sprintf("%+v", n), fmt.Sprintf("%+v", want); got != w {
		t.Errorf("/nodes/1:\ngot  %s\nwant %s", got, w)
	}

	// Node 5 is going down (the farmer's target): standby, power Up -> Down.
	var n5 []gpNode
	gpGet(t, base, "/nodes?node_id=5", &n5)
	if len(n5) != 1 || n5[0].Power.State != "Up" || n5[0].Power.Target != "Down" || n5[0].Status != "standby" ||
		n5[0].TotalResources.CRU != 64 || n5[0].Location.Latitude != nil {
		t.Errorf("node 5: got %+v, want standby, power Up->Down, 64 cores, no coordinates", n5)
	}

	var st struct {
		Status string `json:"status"`
	}
	gpGet(t, base, "/nodes/3/status", &st)
	if st.Status != "standby" {
		t.Errorf("/nodes/3/status: got %q, want standby", st.Status)
	}
}

// TestGridproxyLists: /farms, /twins, /contracts, /public_ips and /stats
// with their filters.
func TestGridproxyLists(t *testing.T) {
	base := gpServer(t)
	farmIDs := func(q string) []int {
		var fs []gpFarm
		gpGet(t, base, "/farms?"+q, &fs)
		ids := []int{}
		for _, f := range fs {
			ids = append(ids, f.FarmID)
		}
		return ids
	}
	for _, tt := range []struct {
		query string
		want  []int
	}{
		{"", []int{1, 2, 3}},
		{"free_ips=1", []int{1}},
		{"total_ips=1", []int{1, 3}},
		{"farm_id=2", []int{2}},
		{"twin_id=12", []int{3}},
		{"name=GAMMA", []int{3}},
		{"name_contains=ET", []int{2}},
		{"dedicated=false", []int{1, 2, 3}},
		{"certification_type=Gold", []int{}},
		{"node_status=standby", []int{2, 3}},
		{"node_status=up,standby&node_free_mru=" + strconv.FormatUint(100*gb, 10), []int{3}},
		{"node_total_cru=32", []int{1, 3}},
		{"node_free_sru=" + strconv.FormatUint(300*gb, 10), []int{1}},
		{"node_rented_by=21", []int{1}},
		{"node_has_ipv6=true", []int{3}},
		{"country=nl", []int{2}},
		{"sort_by=free_ips&sort_order=desc", []int{1, 3, 2}},
		{"sort_by=name&sort_order=desc", []int{3, 2, 1}},
		{"size=1&page=2", []int{2}},
	} {
		if got := farmIDs(tt.query); !slices.Equal(got, tt.want) {
			t.Errorf("farms?%s: got %v, want %v", tt.query, got, tt.want)
		}
	}
	var farms []gpFarm
	gpGet(t, base, "/farms?farm_id=1", &farms)
	wantIPs := []gpPublicIP{
		{ID: "185.0.1.2/24", IP: "185.0.1.2/24", Gateway: "185.0.0.1", FarmID: 1},
		{ID: "185.0.1.3/24", IP: "185.0.1.3/24", Gateway: "185.0.0.1", ContractID: 7, FarmID: 1},
		{ID: "185.0.1.4/24", IP: "185.0.1.4/24", Gateway: "185.0.0.1", FarmID: 1},
	}
	if len(farms) != 1 || farms[0].Name != "alpha" || farms[0].TwinID != 10 || !slices.Equal(farms[0].PublicIps, wantIPs) {
		t.Errorf("farm 1: got %+v, want alpha of twin 10 with IPs %+v", farms, wantIPs)
	}

	var twins []gpTwin
	gpGet(t, base, "/twins?relay=relay.example", &twins)
	if len(twins) != 1 || twins[0].TwinID != 20 {
		t.Errorf("twins?relay: got %+v, want twin 20", twins)
	}
	// Alice's well-known key and address (Substrate's dev account).
	gpGet(t, base, "/twins?public_key=d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d", &twins)
	if len(twins) != 1 || twins[0].TwinID != 21 || twins[0].AccountID != "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY" {
		t.Errorf("twins?public_key: got %+v, want twin 21 with Alice's SS58 address", twins)
	}
	gpGet(t, base, "/twins?account_id=5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY", &twins)
	if len(twins) != 1 || twins[0].TwinID != 21 {
		t.Errorf("twins?account_id: got %+v, want twin 21", twins)
	}
	_, h := gpGet(t, base, "/twins?ret_count=true&size=2&sort_by=twin_id&sort_order=desc", &twins)
	if len(twins) != 2 || twins[0].TwinID != 107 || h.Get("Count") != "12" {
		t.Errorf("twins desc: got %+v Count %q, want 107 first of 12", twins, h.Get("Count"))
	}

	contractIDs := func(q string) []uint {
		var cs []gpContract
		gpGet(t, base, "/contracts?"+q, &cs)
		ids := []uint{}
		for _, c := range cs {
			ids = append(ids, c.ContractID)
		}
		return ids
	}
	for _, tt := range []struct {
		query string
		want  []uint
	}{
		{"", []uint{1, 2, 3, 4, 5}},
		{"contract_id=3", []uint{3}},
		{"twin_id=20", []uint{1, 2, 5}},
		{"node_id=1", []uint{1, 4}},
		{"state=Created", []uint{1, 3, 4, 5}},
		{"state=Deleted", []uint{2}},
		{"state=deleted,created&type=node", []uint{1, 2, 5}},
		{"type=rent", []uint{4}},
		{"name=web", []uint{3}},
		{"deployment_hash=ab", []uint{1}},
		{"deployment_data=app", []uint{1}},
		{"number_of_public_ips=1", []uint{1}},
		{"farm_id=1", []uint{1, 2, 4}},
		{"farm_name=alpha&type=rent", []uint{4}},
		{"sort_by=twin_id&sort_order=desc", []uint{4, 3, 5, 2, 1}},
		{"size=3&page=2", []uint{4, 5}},
	} {
		if got := contractIDs(tt.query); !slices.Equal(got, tt.want) {
			t.Errorf("contracts?%s: got %v, want %v", tt.query, got, tt.want)
		}
	}
	for _, path := range []string{"/contracts?state=Created&size=1&ret_count=true", "/public_ips?free=true&size=1&ret_count=true",
		"/farms?size=1&ret_count=true&node_status=up", "/gateways?ret_count=true&size=1"} {
		var items []json.RawMessage
		_, h := gpGet(t, base, path, &items)
		want := map[string]string{"/contracts": "4", "/public_ips": "2", "/farms": "2", "/gateways": "2"}[path[:strings.Index(path, "?")]]
		if len(items) != 1 || h.Get("Count") != want || h.Get("Pages") != want {
			t.Errorf("%s: got %d items, Count %q, Pages %q, want 1 item and %s", path, len(items), h.Get("Count"), h.Get("Pages"), want)
		}
	}

	var c gpContract
	gpGet(t, base, "/contracts/1", &c)
	var d gpNodeContractDetails
	if err := json.Unmarshal(c.Details, &d); err != nil {
		t.Fatal(err)
	}
	wantD := gpNodeContractDetails{NodeID: 1, DeploymentData: "app", DeploymentHash: "ab", NumberOfPublicIps: 1, FarmName: "alpha", FarmID: 1}
	if c.State != "Created" || c.Type != "node" || c.TwinID != 20 || c.CreatedAt != uint(testNow.Unix()-3600) || d != wantD {
		t.Errorf("contract 1: got %+v details %+v, want Created node of twin 20 created an hour ago, %+v", c, d, wantD)
	}
	gpGet(t, base, "/contracts/3", &c)
	if got := strings.TrimSpace(string(c.Details)); got != `{"name":"web"}` {
		t.Errorf("contract 3 details: got %s, want {\"name\":\"web\"}", got)
	}
	gpGet(t, base, "/contracts/4", &c)
	if got := strings.TrimSpace(string(c.Details)); got != `{"nodeId":1,"farm_name":"alpha","farm_id":1}` {
		t.Errorf("contract 4 details: got %s", got)
	}

	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/public_ips", []string{"185.0.1.2/24", "185.0.1.3/24", "185.0.1.4/24", "185.0.3.2/24"}},
		{"/public_ips?farm_ids=3&farm_ids=2", []string{"185.0.3.2/24"}},
		{"/ips?farm_id=1&free=true", []string{"185.0.1.2/24", "185.0.1.4/24"}},
		{"/public_ips?free=false", []string{"185.0.1.3/24", "185.0.3.2/24"}},
		{"/public_ips?ip=185.0.1.3", []string{"185.0.1.3/24"}},
		{"/public_ips?gateway=185.0.0.9", []string{}},
		{"/public_ips?sort_by=contract_id&sort_order=desc&size=1", []string{"185.0.1.3/24"}},
	} {
		var ips []gpPublicIP
		gpGet(t, base, tt.path, &ips)
		got := []string{}
		for _, ip := range ips {
			got = append(got, ip.IP)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.path, got, tt.want)
		}
	}

	for _, tt := range []struct {
		query string
		want  gpStats
	}{
		{"", gpStats{Nodes: 7, Farms: 3, Countries: 5, TotalCRU: 127, TotalMRU: 268 * int64(gb),
			TotalSRU: 1915 * int64(gb), TotalHRU: 6096 * int64(gb), PublicIPs: 4, AccessNodes: 2, Gateways: 1,
			Twins: 12, Contracts: 5, DedicatedNodes: 6,
			NodesDistribution: map[string]int64{"BE": 1, "be": 1, "NL": 2, "DE": 2, "": 1}}},
		{"status=up", gpStats{Nodes: 3, Farms: 3, Countries: 3, TotalCRU: 11, TotalMRU: 36 * int64(gb),
			TotalSRU: 771 * int64(gb), PublicIPs: 4, AccessNodes: 2, Gateways: 1, Twins: 12, Contracts: 5,
			DedicatedNodes: 2, NodesDistribution: map[string]int64{"BE": 1, "DE": 1, "": 1}}},
		{"status=standby,down", gpStats{Nodes: 4, Farms: 3, Countries: 3, TotalCRU: 116, TotalMRU: 232 * int64(gb),
			TotalSRU: 1144 * int64(gb), TotalHRU: 6096 * int64(gb), PublicIPs: 4, Twins: 12, Contracts: 5,
			DedicatedNodes: 4, NodesDistribution: map[string]int64{"be": 1, "NL": 2, "DE": 1}}},
	} {
		var st gpStats
		gpGet(t, base, "/stats?"+tt.query, &st)
		if got, w := fmt.Sprintf("%+v", st), fmt.Sprintf("%+v", tt.want); got != w {
			t.Errorf("stats?%s:\ngot  %s\nwant %s", tt.query, got, w)
		}
	}
}

// TestAccountID: the SS58 addresses of known keys (Substrate's dev
// accounts Alice and Bob), and none for keys that are not 32 bytes of hex.
func TestAccountID(t *testing.T) {
	for _, tt := range []struct{ key, want string }{
		{alicePublicKey, "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"},
		{"8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48", "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"},
		{"aa", ""},
		{"zz" + alicePublicKey[2:], ""},
		{"", ""},
	} {
		if got := accountID(tt.key); got != tt.want {
			t.Errorf("accountID(%q): got %q, want %q", tt.key, got, tt.want)
		}
	}
}
