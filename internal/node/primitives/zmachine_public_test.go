package primitives

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/testutil"
)

// recNetworks records the public attachments the zmachine manager asks for.
type recNetworks struct{ calls []string }

func (r *recNetworks) Attach(uint32, string, string) (network.Attachment, error) {
	return network.Attachment{}, nil
}
func (r *recNetworks) AttachPublic(tap string, ips ...netip.Addr) error {
	r.calls = append(r.calls, fmt.Sprintf("attach %s %v", tap, ips))
	return nil
}
func (r *recNetworks) Detach(tap string) error {
	r.calls = append(r.calls, "detach "+tap)
	return nil
}

// TestPublicLink: the ip workload's ip and ip6 go to the tap and to the
// guest's eth1 (IPv6 as a /128 via the node's fe80::1); an ip workload
// without any address or with an IPv6 in ip6's place is refused.
func TestPublicLink(t *testing.T) {
	for _, tt := range []struct {
		name   string
		result gridtypes.PublicIPResult
		attach string
		guest  guest.Interface
		err    string
	}{
		{"v4", gridtypes.PublicIPResult{IP: ipNet(t, "203.0.113.10/24"), Gateway: "203.0.113.1"},
			"[203.0.113.10]", guest.Interface{Address: "203.0.113.10/24", Gateway: "203.0.113.1"}, ""},
		{"v6", gridtypes.PublicIPResult{IPv6: ipNet(t, "2001:db8:1::ff:fe00:1/64")},
			"[2001:db8:1::ff:fe00:1]", guest.Interface{Address6: "2001:db8:1::ff:fe00:1/128", Gateway6: "fe80::1"}, ""},
		{"dual", gridtypes.PublicIPResult{IP: ipNet(t, "203.0.113.10/24"), Gateway: "203.0.113.1", IPv6: ipNet(t, "2001:db8:1::ff:fe00:1/64")},
			"[203.0.113.10 2001:db8:1::ff:fe00:1]", guest.Interface{Address: "203.0.113.10/24", Gateway: "203.0.113.1",
				Address6: "2001:db8:1::ff:fe00:1/128", Gateway6: "fe80::1"}, ""},
		{"none", gridtypes.PublicIPResult{}, "", guest.Interface{}, "has no address"},
		{"ipv4 as ip6", gridtypes.PublicIPResult{IPv6: ipNet(t, "203.0.113.10/24")}, "", guest.Interface{}, "want IPv6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := &gridtypes.Deployment{TwinID: 7, ContractID: 9}
			raw, _ := json.Marshal(tt.result)
			d.Workloads = []gridtypes.Workload{{Name: "pip", Type: gridtypes.PublicIPType,
				Result: gridtypes.Result{State: gridtypes.StateOk, Data: raw}}}
			wl := &provision.Workload{Workload: gridtypes.Workload{Name: "vm"}, ID: d.WorkloadID("vm"), Deployment: d}
			nets := &recNetworks{}
			m := &ZMachineManager{Networks: nets, Log: testutil.Logger(t)}
			link, err := m.public(wl, &gridtypes.ZMachine{Network: gridtypes.MachineNetwork{PublicIP: "pip"}})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tap := network.PublicTap(d.WorkloadID("pip"))
			if got, want := strings.Join(nets.calls, "; "), "attach "+tap+" "+tt.attach; got != want {
				t.Errorf("attach: got %q, want %q", got, want)
			}
			want := tt.guest
			want.Name, want.MAC = "eth1", network.PublicMAC(tap).String()
			if got := link.guest(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("guest: got %+v, want %+v", got, want)
			}
			cfg := guest.Config{Entrypoint: []string{"/bin/sh"}, Interfaces: []guest.Interface{link.guest()}}
			if err := cfg.Validate(); err != nil {
				t.Errorf("guest config: %v", err)
			}
		})
	}
}

func ipNet(t *testing.T, s string) gridtypes.IPNet {
	t.Helper()
	n, err := gridtypes.ParseIPNet(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
