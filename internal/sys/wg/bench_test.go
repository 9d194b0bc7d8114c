package wg

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/testutil"
)

// BenchmarkTCP measures one TCP stream between two namespaces over
// WireGuard and over the veth underneath, alternating, one round per
// iteration (-benchtime=5x), and reports the medians and their ratio. The
// implementation is ZOS_WG_MODE (auto, kernel, userspace; default auto).
// TestGuestKernelWireGuard runs it in a guest with kernel WireGuard when
// ZOS_WG_GUEST_BENCH=1.
func BenchmarkTCP(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireFile(b, "/dev/net/tun")
	mode, err := ParseMode(os.Getenv("ZOS_WG_MODE"))
	if err != nil {
		b.Fatal(err)
	}
	nsA, nsB := fmt.Sprintf("wgba%d", os.Getpid()), fmt.Sprintf("wgbb%d", os.Getpid())
	for _, ns := range []string{nsA, nsB} {
		if err := netns.Create(ns); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = netns.Delete(ns) })
	}
	if err := rtnl.AddVeth(nsA, "ua", "", nsB, "ub"); err != nil {
		b.Fatal(err)
	}
	under := [2]netip.Prefix{netip.MustParsePrefix("10.77.0.1/24"), netip.MustParsePrefix("10.77.0.2/24")}
	over := [2]netip.Prefix{netip.MustParsePrefix("10.78.0.1/24"), netip.MustParsePrefix("10.78.0.2/24")}
	var keys [2]wgtypes.Key
	for i := range keys {
		if keys[i], err = wgtypes.GeneratePrivateKey(); err != nil {
			b.Fatal(err)
		}
	}
	for i, ns := range []string{nsA, nsB} {
		name := fmt.Sprintf("wgb%c%d", 'a'+i, os.Getpid())
		if err := rtnl.AddAddr(ns, []string{"ua", "ub"}[i], under[i]); err != nil {
			b.Fatal(err)
		}
		d, err := StartMode(mode, name, ns, ns, testutil.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = d.Close() })
		if i == 0 {
			b.Logf("wireguard: %s", d.Kind())
		}
		o := 1 - i
		c := Config{PrivateKey: keys[i], ListenPort: 7100 + uint16(i), Peers: []Peer{{PublicKey: keys[o].PublicKey(),
			Endpoint: netip.AddrPortFrom(under[o].Addr(), 7100+uint16(o)), AllowedIPs: []netip.Prefix{over[o].Masked()}}}}
		if err := d.Configure(c); err != nil {
			b.Fatal(err)
		}
		if err := rtnl.AddAddr(ns, name, over[i]); err != nil {
			b.Fatal(err)
		}
		if err := rtnl.SetUp(ns, name); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("load average before: %s", loadAvg())
	b.ResetTimer()
	var wgs, unders, ratios []float64
	for i := 0; i < b.N; i++ {
		var w, u float64
		if i%2 == 0 {
			w, u = tcpRate(b, nsA, nsB, over[1].Addr()), tcpRate(b, nsA, nsB, under[1].Addr())
		} else {
			u, w = tcpRate(b, nsA, nsB, under[1].Addr()), tcpRate(b, nsA, nsB, over[1].Addr())
		}
		b.Logf("round %d: wireguard %.3f Gbit/s, underlay %.3f Gbit/s, ratio %.3f", i, w/1e9, u/1e9, w/u)
		wgs, unders, ratios = append(wgs, w), append(unders, u), append(ratios, w/u)
	}
	b.StopTimer()
	b.Logf("load average after: %s", loadAvg())
	b.ReportMetric(median(wgs)/1e9, "wg-Gbit/s")
	b.ReportMetric(median(unders)/1e9, "underlay-Gbit/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(slices.Min(ratios), "ratio-min")
	b.ReportMetric(slices.Max(ratios), "ratio-max")
}

// tcpRate sends one TCP stream for 2 s from namespace client to a listener
// in namespace server on addr, and returns the bits per second received.
func tcpRate(b *testing.B, client, server string, addr netip.Addr) float64 {
	b.Helper()
	var l net.Listener
	if err := netns.Do(server, func() error {
		var err error
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	type result struct {
		n   int64
		d   time.Duration
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		start := time.Now()
		n, err := io.Copy(io.Discard, c)
		got <- result{n, time.Since(start), err}
	}()
	var c net.Conn
	err := testutil.PollEvery(10*time.Second, 100*time.Millisecond, func() (bool, error) {
		err := netns.Do(client, func() error {
			var err error
			c, err = net.DialTimeout("tcp", l.Addr().String(), time.Second)
			return err
		})
		return err == nil, err
	})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	r := <-got
	if r.err != nil {
		b.Fatal(r.err)
	}
	return float64(r.n) * 8 / r.d.Seconds()
}

// median returns the median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown: " + err.Error()
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
