package network

import (
	"context"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/nft"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

type fakeContracts map[uint64]registry.Contract

func (f fakeContracts) Contract(_ context.Context, id uint64) (registry.Contract, error) {
	c, ok := f[id]
	if !ok {
		return c, registry.ErrNotFound
	}
	return c, nil
}

func ipWorkload(t testing.TB, d *gridtypes.Deployment, name string) *provision.Workload {
	wl := gridtypes.Workload{Name: name, Type: gridtypes.PublicIPType}
	raw, _ := json.Marshal(gridtypes.PublicIP{V4: true})
	wl.Data = raw
	d.Workloads = append(d.Workloads, wl)
	return &provision.Workload{Workload: wl, ID: gridtypes.NewWorkloadID(d.TwinID, d.ContractID, name), Deployment: d}
}

func TestPickPublicIP(t *testing.T) {
	c := registry.Contract{ID: 4, PublicIPs: []registry.PublicIP{{IP: "203.0.113.10/24"}, {IP: "203.0.113.11/24"}}}
	d := &gridtypes.Deployment{TwinID: 1, ContractID: 4}
	ipWorkload(t, d, "a")
	ipWorkload(t, d, "b")
	r, _ := json.Marshal(gridtypes.PublicIPResult{IP: gridtypes.MustParseIPNet("203.0.113.10/24")})
	d.Workloads[0].Result = gridtypes.Result{State: gridtypes.StateOk, Data: r}
	if got, err := PickPublicIP(c, d, "b"); err != nil || got.IP != "203.0.113.11/24" {
		t.Errorf("second workload: got %v %v, want 203.0.113.11/24", got, err)
	}
	if got, err := PickPublicIP(c, d, "a"); err != nil || got.IP != "203.0.113.10/24" {
		t.Errorf("reboot keeps the address: got %v %v", got, err)
	}
	c.PublicIPs = c.PublicIPs[:1]
	if _, err := PickPublicIP(c, d, "b"); err == nil {
		t.Error("no free IP: got no error")
	}
}

// TestRootAntiSpoofing: a veth standing for a VM's public tap on a bridge
// may send from its address, not from another.
func TestRootAntiSpoofing(t *testing.T) {
	requireNet(t)
	l := netlab.New(t, 1)
	node := l.Nodes[0].NS
	vm, obs := "zl"+l.ID+"-vm", "zl"+l.ID+"-obs"
	for _, ns := range []string{vm, obs} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = netns.Delete(ns) })
	}
	c := registry.Contract{ID: 9, PublicIPs: []registry.PublicIP{{IP: "203.0.113.10/24", Gateway: "203.0.113.1"}}}
	d := &gridtypes.Deployment{TwinID: 3, ContractID: 9}
	wl := ipWorkload(t, d, "ip")
	tap := PublicTap(wl.ID)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The VM's public link is routed (a veth stands for the tap): its
	// address and a spoofed one both routed to it, so that only the filter
	// tells them apart; an observer on another link of the node.
	must(rtnl.AddVeth(node, tap, "", vm, "eth0"))
	must(rtnl.AddVeth(node, "obs", "", obs, "eth0"))
	must(rtnl.AddAddr(vm, "eth0", netip.MustParsePrefix("203.0.113.10/24")))
	must(rtnl.AddAddr(vm, "eth0", netip.MustParsePrefix("203.0.113.99/24")))
	must(rtnl.AddAddr(obs, "eth0", netip.MustParsePrefix("192.0.2.2/24")))
	must(rtnl.AddAddr(node, "obs", netip.MustParsePrefix("192.0.2.1/24")))
	must(netns.Sysctl(node, "net/ipv4/ip_forward", "1"))
	must(netns.Sysctl(node, "net/ipv4/conf/"+tap+"/proxy_arp", "1"))
	for _, a := range []string{"203.0.113.10/32", "203.0.113.99/32"} {
		must(rtnl.AddRoute(node, rtnl.Route{Dst: netip.MustParsePrefix(a), Dev: tap}))
	}
	must(rtnl.AddRoute(vm, rtnl.Route{Dst: netip.MustParsePrefix("192.0.2.0/24"), Dev: "eth0", Via: netip.MustParseAddr("203.0.113.1")}))
	must(rtnl.AddRoute(obs, rtnl.Route{Dst: netip.MustParsePrefix("203.0.113.0/24"), Dev: "eth0", Via: netip.MustParseAddr("192.0.2.1")}))

	m := NewPublicIPManager(PublicIPConfig{NodeNS: node}, nft.Tables{}, fakeContracts{9: c}, nil, testutil.Logger(t))
	res, err := m.Provision(context.Background(), wl)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.(gridtypes.PublicIPResult); r.IP.String() != "203.0.113.10/24" || r.Gateway != "203.0.113.1" {
		t.Errorf("result: got %+v", r)
	}
	ping := func(src string) bool {
		_, err := netns.Run(vm, "", "busybox", "ping", "-c", "1", "-W", "1", "-I", src, "192.0.2.2")
		return err == nil
	}
	if !ping("203.0.113.10") {
		t.Error("the VM cannot send from its own address")
	}
	if ping("203.0.113.99") {
		t.Error("a spoofed source passed the filter")
	}
	must(m.Deprovision(context.Background(), wl))
	if tables, err := (nft.Tables{}).List(node); err != nil || slices.Contains(tables, "inet "+filterTable(tap)) {
		t.Errorf("filter table left: %q (%v)", tables, err)
	}
	if !ping("203.0.113.99") {
		t.Error("without the filter the other address should pass (test setup broken)")
	}
}
