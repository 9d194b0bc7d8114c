package netcfg

import (
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

func TestIn6Layouts(t *testing.T) {
	// struct in6_ifreq is 24 bytes; struct in6_rtmsg 80 with rtmsg_info
	// at 64 and rtmsg_ifindex at 76 on x86_64.
	var r in6Rtmsg
	if s := unsafe.Sizeof(in6Ifreq{}); s != 24 {
		t.Errorf("in6_ifreq: got %d bytes, want 24", s)
	}
	if s, info, idx := unsafe.Sizeof(r), unsafe.Offsetof(r.info), unsafe.Offsetof(r.ifindex); s != 80 || info != 64 || idx != 76 {
		t.Errorf("in6_rtmsg: got size %d, info at %d, ifindex at %d; want 80, 64, 76", s, info, idx)
	}
}

// TestRootIPv6: in a namespace of its own, the ioctls set a /128 address
// and a default route via a link-local router, as vminit does on a
// public-IPv6 VM's interface; bad input is refused.
func TestRootIPv6(t *testing.T) {
	testutil.RequireRoot(t)
	ns := "zt-netcfg6-" + strings.ReplaceAll(t.Name(), "/", "-")[len("TestRoot"):]
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(ns); err != nil {
			t.Error(err)
		}
	})
	// A veth with both ends up has a carrier: its addresses leave the
	// tentative state.
	if err := rtnl.AddVeth(ns, "d0", "", ns, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := rtnl.SetUp(ns, "d1"); err != nil {
		t.Fatal(err)
	}
	if err := netns.Sysctl(ns, "net/ipv6/conf/d0/accept_dad", "0"); err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParsePrefix("2001:db8:1::5/128")
	err := netns.Do(ns, func() error {
		if err := Up("d0"); err != nil {
			return err
		}
		if err := AddAddr6("d0", ip); err != nil {
			return err
		}
		if err := AddDefaultRoute6("d0", netip.MustParseAddr("fe80::1")); err != nil {
			return err
		}
		// the planetary link's route: the overlay via the node
		return AddRoute6("d0", netip.MustParsePrefix("200::/7"), netip.MustParseAddr("fe80::1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Until the veth reports its carrier the address stays tentative, even
	// without DAD, and rtnl.Addrs leaves it out: wait for the carrier.
	var addrs map[string][]netip.Prefix
	if err := testutil.Poll(5*time.Second, func() (bool, error) {
		var err error
		addrs, err = rtnl.Addrs(ns)
		return len(addrs["d0"]) > 0, err
	}); err != nil || len(addrs["d0"]) != 1 || addrs["d0"][0] != ip {
		t.Errorf("addresses of d0: got %v, %v, want %s", addrs["d0"], err, ip)
	}
	routes, err := rtnl.Routes(ns, 10) // AF_INET6
	found, overlay := false, false
	for _, r := range routes {
		if r.Dst.Bits() == 0 && r.Via == netip.MustParseAddr("fe80::1") && r.Dev == "d0" {
			found = true
		}
		if r.Dst == netip.MustParsePrefix("200::/7") && r.Via == netip.MustParseAddr("fe80::1") && r.Dev == "d0" {
			overlay = true
		}
	}
	if err != nil || !found || !overlay {
		t.Errorf("routes: got %v, %v, want default and 200::/7 via fe80::1 dev d0", routes, err)
	}
	if err := AddAddr6("d0", netip.MustParsePrefix("10.0.0.1/24")); err == nil {
		t.Error("IPv4 address: got no error")
	}
	if err := AddDefaultRoute6("d0", netip.MustParseAddr("10.0.0.1")); err == nil {
		t.Error("IPv4 gateway: got no error")
	}
	if err := AddRoute6("d0", netip.MustParsePrefix("10.0.0.0/8"), netip.MustParseAddr("fe80::1")); err == nil {
		t.Error("IPv4 destination: got no error")
	}
}
