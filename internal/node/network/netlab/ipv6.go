package netlab

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// The lab's IPv6 (AddIPv6): the farm LAN's prefix, the farm router's
// address on it, and an internet host.
var (
	LAN6          = netip.MustParsePrefix("fd99::/64")
	LANGateway6   = netip.MustParseAddr("fd99::1")
	InternetHost6 = netip.MustParseAddr("2001:db8:ffff::1")
)

// IP6 is the node's address on the LAN once the lab has IPv6: LAN6 with
// the last byte of its IPv4 address (10.99.0.11 is fd99::b).
func (n Node) IP6() netip.Addr {
	b := LAN6.Addr().As16()
	b[15] = n.IP.As4()[3]
	return netip.AddrFrom16(b)
}

// AddIPv6 gives the farm LAN IPv6 next to its IPv4: the internet namespace
// routes (forwarding on, so it takes no router advertisement) with
// LANGateway6 on the LAN bridge and InternetHost6 on its loopback; every
// node gets IP6 on its uplink and a default route via the router. The
// addresses skip duplicate address detection: usable at once.
func (l *Lab) AddIPv6(t testing.TB) {
	t.Helper()
	must(t, netns.Sysctl(l.Internet, "net/ipv6/conf/all/forwarding", "1"))
	for _, link := range []string{"lan", "lo"} {
		must(t, netns.Sysctl(l.Internet, "net/ipv6/conf/"+link+"/accept_dad", "0"))
	}
	must(t, rtnl.AddAddr(l.Internet, "lan", netip.PrefixFrom(LANGateway6, LAN6.Bits())))
	must(t, rtnl.AddAddr(l.Internet, "lo", netip.PrefixFrom(InternetHost6, 128)))
	for _, n := range l.Nodes {
		must(t, netns.Sysctl(n.NS, "net/ipv6/conf/eth0/accept_dad", "0"))
		must(t, rtnl.AddAddr(n.NS, "eth0", netip.PrefixFrom(n.IP6(), LAN6.Bits())))
		must(t, rtnl.AddRoute(n.NS, rtnl.Route{Dst: netip.MustParsePrefix("::/0"), Dev: "eth0", Via: LANGateway6}))
	}
}

// PublicLAN6 is the global prefix the farm router advertises on the LAN
// in StartRouterAdvertisements (documentation space: public for the
// node's firewall), and PublicRouter6 the router's address in it.
var (
	PublicLAN6    = netip.MustParsePrefix("2001:db8:1::/64")
	PublicRouter6 = netip.MustParseAddr("2001:db8:1::1")
)

// StartRouterAdvertisements makes the internet namespace the LAN's IPv6
// router the Debian way: PublicRouter6 on the LAN bridge, InternetHost6 on
// its loopback, forwarding on, and radvd (the real daemon, in the
// foreground, killed in t.Cleanup) advertising PublicLAN6 for SLAAC every
// few seconds. It skips when radvd is missing (make deps installs it).
func (l *Lab) StartRouterAdvertisements(t testing.TB) {
	t.Helper()
	radvd := testutil.RequireBinary(t, "radvd")
	must(t, netns.Sysctl(l.Internet, "net/ipv6/conf/all/forwarding", "1"))
	for _, link := range []string{"lan", "lo"} {
		must(t, netns.Sysctl(l.Internet, "net/ipv6/conf/"+link+"/accept_dad", "0"))
	}
	must(t, rtnl.AddAddr(l.Internet, "lan", netip.PrefixFrom(PublicRouter6, PublicLAN6.Bits())))
	must(t, rtnl.AddAddr(l.Internet, "lo", netip.PrefixFrom(InternetHost6, 128)))
	dir := t.TempDir()
	conf := filepath.Join(dir, "radvd.conf")
	must(t, os.WriteFile(conf, []byte(fmt.Sprintf(`interface lan {
	AdvSendAdvert on;
	MinRtrAdvInterval 3;
	MaxRtrAdvInterval 4;
	prefix %s {
		AdvOnLink on;
		AdvAutonomous on;
	};
};
`, PublicLAN6)), 0o644))
	var out bytes.Buffer
	cmd := exec.Command(radvd, "--nodaemon", "--config", conf, "--pidfile", filepath.Join(dir, "radvd.pid"), "--logmethod", "stderr", "--debug", "1")
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, netns.Start(l.Internet, cmd))
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("radvd:\n%s", out.String())
		}
	})
}
