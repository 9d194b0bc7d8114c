package primitives

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/vm/guest"
	"github.com/zos-go/zos/internal/testutil"
)

// recPlanetary records the planetary attachments the zmachine manager
// asks for.
type recPlanetary struct {
	subnet    netip.Prefix
	subnetErr error
	attachErr error
	calls     []string
}

func (r *recPlanetary) Subnet() (netip.Prefix, error) { return r.subnet, r.subnetErr }
func (r *recPlanetary) AttachPlanetary(tap string, ip netip.Addr) error {
	r.calls = append(r.calls, fmt.Sprintf("attach %s %s", tap, ip))
	return r.attachErr
}
func (r *recPlanetary) DetachPlanetary(tap string) error {
	r.calls = append(r.calls, "detach "+tap)
	return nil
}

// TestPlanetaryLink: a VM with `planetary: true` gets its tap attached
// with the address derived from the node's /64 and the workload, the same
// every time; vminit gets the address as a /128 and 200::/7 via fe80::1.
// A node without the overlay, a bad subnet or a failed attachment refuse
// the VM with a network.planetary error (a failed attachment is undone);
// without `planetary` nothing is asked.
func TestPlanetaryLink(t *testing.T) {
	subnet := netip.MustParsePrefix("300:1234:5678:9abc::/64")
	id := gridtypes.WorkloadID("7-9-vm")
	tap := network.PlanetaryTap(id)
	want, _ := network.PlanetaryIP(subnet, tap)
	yes := &gridtypes.ZMachine{Network: gridtypes.MachineNetwork{Planetary: true}}

	rec := &recPlanetary{subnet: subnet}
	m := &ZMachineManager{Planetary: rec, Log: testutil.Logger(t)}
	link, err := m.planetary(id, yes)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m.planetary(id, yes)
	if link.ip != want || again.ip != want || !subnet.Contains(link.ip) {
		t.Errorf("got %s then %s, want %s in %s both times", link.ip, again.ip, want, subnet)
	}
	if got, w := strings.Join(rec.calls, "; "), fmt.Sprintf("attach %s %s; attach %s %s", tap, want, tap, want); got != w {
		t.Errorf("calls: got %q, want %q", got, w)
	}
	g := link.guest("eth1")
	wantGuest := guest.Interface{Name: "eth1", MAC: network.PublicMAC(tap).String(), Address6: want.String() + "/128",
		Routes6: []guest.Route{{Dst: "200::/7", Via: "fe80::1"}}}
	if fmt.Sprint(g) != fmt.Sprint(wantGuest) {
		t.Errorf("guest: got %+v, want %+v", g, wantGuest)
	}
	cfg := guest.Config{Entrypoint: []string{"/bin/sh"}, Interfaces: []guest.Interface{g}}
	if err := cfg.Validate(); err != nil {
		t.Errorf("guest config: %v", err)
	}
	if nic := link.nic(); nic.Tap != tap || nic.MAC != g.MAC {
		t.Errorf("nic: got %+v, want tap %s with MAC %s", nic, tap, g.MAC)
	}

	if l, err := m.planetary(id, &gridtypes.ZMachine{}); l != nil || err != nil {
		t.Errorf("without planetary: got %v, %v, want nothing", l, err)
	}

	for _, tt := range []struct {
		name  string
		m     *ZMachineManager
		calls string
	}{
		{"node without the overlay", &ZMachineManager{}, ""},
		{"subnet unknown", &ZMachineManager{Planetary: &recPlanetary{subnetErr: errors.New("no key")}}, ""},
		{"subnet not an overlay /64", &ZMachineManager{Planetary: &recPlanetary{subnet: netip.MustParsePrefix("2001:db8::/64")}}, ""},
		{"attach fails", &ZMachineManager{Planetary: &recPlanetary{subnet: subnet, attachErr: errors.New("nft: boom")}},
			fmt.Sprintf("attach %s %s; detach %s", tap, want, tap)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tt.m.planetary(id, yes)
			if l != nil || err == nil || !strings.HasPrefix(err.Error(), "network.planetary: ") {
				t.Errorf("got %v, %v, want a network.planetary error", l, err)
			}
			if r, ok := tt.m.Planetary.(*recPlanetary); ok {
				if got := strings.Join(r.calls, "; "); got != tt.calls {
					t.Errorf("calls: got %q, want %q", got, tt.calls)
				}
			}
		})
	}
}
