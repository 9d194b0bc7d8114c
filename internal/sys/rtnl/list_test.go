package rtnl

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

// TestList lists, in a namespace with a veth to another, the route added
// there (main table), the kernel's local route (local table) and the
// neighbour entry a ping made.
func TestList(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireBinary(t, "busybox")
	b := make([]byte, 3)
	rand.Read(b)
	a, z := "rl"+hex.EncodeToString(b)+"a", "rl"+hex.EncodeToString(b)+"z"
	for _, ns := range []string{a, z} {
		if err := netns.Create(ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { netns.Delete(ns) })
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(AddVeth(a, "va", "", z, "vz"))
	must(AddAddr(a, "va", netip.MustParsePrefix("10.1.1.1/24")))
	must(AddAddr(z, "vz", netip.MustParsePrefix("10.1.1.2/24")))
	must(SetUp(z, "vz"))
	must(SetUp(a, "va"))
	must(AddRoute(a, Route{Dst: netip.MustParsePrefix("192.0.2.0/24"), Dev: "va", Via: netip.MustParseAddr("10.1.1.2")}))
	if out, err := netns.Run(a, "", "busybox", "ping", "-c", "1", "-W", "2", "10.1.1.2"); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}

	routes, err := Routes(a, unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	want := []Listed{
		{Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_BOOT, Dst: netip.MustParsePrefix("192.0.2.0/24"), Dev: "va", Via: netip.MustParseAddr("10.1.1.2")},
		{Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Protocol: unix.RTPROT_KERNEL, Dst: netip.MustParsePrefix("10.1.1.1/32"), Dev: "va"},
	}
	for _, w := range want {
		if !slices.Contains(routes, w) {
			t.Errorf("routes: got %v, want %s among them", routes, w)
		}
	}

	mac, err := HardwareAddr(z, "vz")
	if err != nil {
		t.Fatal(err)
	}
	neigh, err := Neighbors(a)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range neigh {
		if n.IP == netip.MustParseAddr("10.1.1.2") && n.Dev == "va" && n.MAC.String() == mac.String() {
			found = true
		}
	}
	if !found {
		t.Errorf("neighbours: got %v, want 10.1.1.2 dev va lladdr %s", neigh, mac)
	}

	// IPv6: the link-local prefix and the multicast route the kernel adds
	// to a link with IPv6.
	routes, err = Routes(a, unix.AF_INET6)
	if err != nil {
		t.Fatal(err)
	}
	want = []Listed{
		{Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST, Protocol: unix.RTPROT_KERNEL, Dst: netip.MustParsePrefix("fe80::/64"), Dev: "va"},
		{Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_MULTICAST, Protocol: unix.RTPROT_KERNEL, Dst: netip.MustParsePrefix("ff00::/8"), Dev: "va"},
	}
	for _, w := range want {
		if !slices.Contains(routes, w) {
			t.Errorf("IPv6 routes: got %v, want %s among them", routes, w)
		}
	}
}
