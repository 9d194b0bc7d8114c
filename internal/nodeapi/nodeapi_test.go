package nodeapi

import (
	"encoding/json"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
)

// TestWire pins the JSON of the answers clients already parse: the field
// names are the original's and must not change with a refactoring.
func TestWire(t *testing.T) {
	for _, tt := range []struct {
		name string
		v    any
		want string
	}{
		{"pool", Pool{Name: "ssd-1", Type: "ssd", Size: 10, Used: 4}, `{"name":"ssd-1","type":"ssd","size":10,"used":4}`},
		{"broken pool", Pool{Name: "hdd-1", Type: "hdd", Broken: "no btrfs"}, `{"name":"hdd-1","type":"hdd","size":0,"used":0,"broken":"no btrfs"}`},
		{"statistics", Statistics{Total: gridtypes.Capacity{CRU: 2}, Users: UsersCounters{Deployments: 1, Workloads: 2, LastDeploymentTimestamp: 3}},
			`{"total":{"cru":2,"sru":0,"hru":0,"mru":0,"ipv4u":0},"used":{"cru":0,"sru":0,"hru":0,"mru":0,"ipv4u":0},"system":{"cru":0,"sru":0,"hru":0,"mru":0,"ipv4u":0},"users":{"deployments":1,"workloads":2,"last_deployment_timestamp":3}}`},
		{"diagnostics", Diagnostics{SystemStatusOk: true, Modules: map[string]string{"vm": "ok"}, Healthy: true},
			`{"system_status_ok":true,"modules":{"vm":"ok"},"healthy":true,"limited_cache":false}`},
		{"version", Version{ZOS: "v1", ZInit: "none"}, `{"zos":"v1","zinit":"none"}`},
		{"public config", PublicConfig{Type: "macvlan", IPv4: "192.0.2.2/24"}, `{"type":"macvlan","ipv4":"192.0.2.2/24","ipv6":"","gw4":"","gw6":"","domain":""}`},
		{"contract request", ContractRequest{ContractID: 7}, `{"contract_id":7}`},
		{"private ips request", PrivateIPsRequest{NetworkName: "net"}, `{"network_name":"net"}`},
		{"logs request", LogsRequest{ContractID: 7, Name: "vm", Offset: -1, Max: 10}, `{"contract_id":7,"name":"vm","offset":-1,"max":10}`},
		{"logs response", LogsResponse{Data: []byte("hi"), Next: 2, Size: 2}, `{"data":"aGk=","next":2,"size":2,"rotated":false}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got %s, want %s", b, tt.want)
			}
		})
	}
}
