package network

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/mesh"
)

// FuzzPlan: any network workload data gives a plan or an error, never a
// panic, and a plan's addresses stay inside what the user gave.
func FuzzPlan(f *testing.F) {
	f.Add([]byte(`{"ip_range":"10.20.0.0/16","subnet":"10.20.2.0/24","wireguard_private_key":"YDCWNm2KtmOS/oS6KkM0Hn+9Xqjz5ZoDDpVXHagKGVY=","wireguard_listen_port":3000,"peers":[{"subnet":"10.20.3.0/24","wireguard_public_key":"h7l9ZzQmDhqHEd0SMTPbExvPfUr8gvIIfNAFrlsIOl0=","allowed_ips":["10.20.3.0/24","100.64.20.3/32"],"endpoint":"10.99.0.12:3001"}]}`))
	f.Add([]byte(`{"ip_range":"10.20.0.0/16","subnet":"10.21.2.0/24","wireguard_private_key":"x","peers":[{"endpoint":"[::1]:0"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n gridtypes.Network
		if json.Unmarshal(b, &n) != nil {
			return
		}
		r, err := Plan("p-", "NET", &n, netip.MustParseAddr("100.127.1.2"))
		if err != nil {
			return
		}
		if !r.Range.Contains(r.Gateway.Addr()) || !mesh.WGRange.Contains(r.WGAddr.Addr()) {
			t.Errorf("plan outside the range: %+v", r)
		}
	})
}
