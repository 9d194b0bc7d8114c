package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/testutil"
)

// BenchmarkCreate measures the creation of a network resource (namespace,
// bridge, veths, wireguard-go device, addresses, routes, firewall) on a
// node with an uplink; the removal is not timed.
func BenchmarkCreate(b *testing.B) {
	requireNet(b)
	l := netlab.New(b, 1)
	m := labManagers(b, l)[0]
	k := newKey(b)
	n := gridtypes.Network{NetworkIPRange: ipnet("10.20.0.0/16"), Subnet: ipnet("10.20.2.0/24"), WGPrivateKey: k.priv, WGListenPort: 7000,
		Peers: []gridtypes.Peer{{Subnet: ipnet("10.20.3.0/24"), WGPublicKey: newKey(b).pub, Endpoint: "10.99.0.12:7001",
			AllowedIPs: []gridtypes.IPNet{ipnet("10.20.3.0/24"), ipnet("100.64.20.3/32")}}}}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wl := netWorkload(b, 7, fmt.Sprintf("net%d", i), n)
		if _, err := m.Provision(ctx, wl); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.Deprovision(ctx, wl); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkThroughput measures TCP throughput with iperf3 between two
// nodes' resources over WireGuard and over the plain LAN underneath, and
// reports both and their ratio. Each iteration is one round measuring both,
// alternating which goes first, so that a shared, busy machine loads both
// alike: run it with -benchtime=5x and it reports the medians of the rounds
// and the lowest and highest ratio, and logs the load average.
func BenchmarkThroughput(b *testing.B) {
	requireNet(b)
	testutil.RequireBinary(b, "iperf3")
	l := netlab.New(b, 2)
	ms := labManagers(b, l)
	na, nb := pair(b, l, "10.20.0.0/16", 1, 2, 7001, 7002)
	ctx := context.Background()
	wa, wb := netWorkload(b, 7, "net", na), netWorkload(b, 7, "net", nb)
	if _, err := ms[0].Provision(ctx, wa); err != nil {
		b.Fatal(err)
	}
	if _, err := ms[1].Provision(ctx, wb); err != nil {
		b.Fatal(err)
	}
	nsA := NamesOf(l.Nodes[0].Prefix, gridtypes.NetID(7, "net")).NS
	nsB := NamesOf(l.Nodes[1].Prefix, gridtypes.NetID(7, "net")).NS
	if ok, out := pingRetry(nsA, gw(nb.Subnet)); !ok {
		b.Fatalf("no path over wireguard: %s", out)
	}
	b.Logf("load average before: %s", loadAvg())
	b.ResetTimer()
	var wgs, unders, ratios []float64
	for i := 0; i < b.N; i++ {
		var wg, under float64
		if i%2 == 0 {
			wg = iperf(b, nsB, nsA, gw(nb.Subnet))
			under = iperf(b, l.Nodes[1].NS, l.Nodes[0].NS, l.Nodes[1].IP)
		} else {
			under = iperf(b, l.Nodes[1].NS, l.Nodes[0].NS, l.Nodes[1].IP)
			wg = iperf(b, nsB, nsA, gw(nb.Subnet))
		}
		b.Logf("round %d: wireguard %.3f Gbit/s, underlay %.3f Gbit/s, ratio %.3f", i, wg/1e9, under/1e9, wg/under)
		wgs, unders, ratios = append(wgs, wg), append(unders, under), append(ratios, wg/under)
	}
	b.StopTimer()
	b.Logf("load average after: %s", loadAvg())
	b.ReportMetric(median(wgs)/1e9, "wg-Gbit/s")
	b.ReportMetric(median(unders)/1e9, "underlay-Gbit/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(slices.Min(ratios), "ratio-min")
	b.ReportMetric(slices.Max(ratios), "ratio-max")
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

// iperf runs an iperf3 server in serverNS on addr and a 3 s client in
// clientNS, and returns the received bits per second.
func iperf(b *testing.B, serverNS, clientNS string, addr netip.Addr) float64 {
	b.Helper()
	srv := exec.Command("iperf3", "-s", "-1", "-B", addr.String(), "-p", "5299")
	if err := netns.Start(serverNS, srv); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	// The client fails until the server listens: retry it until then.
	// iperf3 -J may exit 0 on "connection refused", with the error in the
	// JSON: a reply with an error or nothing received is a retry too.
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
		} `json:"end"`
		Error string `json:"error"`
	}
	var out string
	err := testutil.PollEvery(5*time.Second, 100*time.Millisecond, func() (bool, error) {
		var err error
		out, err = netns.Run(clientNS, "", "iperf3", "-c", addr.String(), "-p", "5299", "-t", "3", "-J")
		if err != nil {
			return false, err
		}
		r.Error, r.End.SumReceived.BitsPerSecond = "", 0
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return false, fmt.Errorf("decoding iperf3 output: %w", err)
		}
		if r.Error != "" || r.End.SumReceived.BitsPerSecond == 0 {
			return false, fmt.Errorf("iperf3: %s, received %v bit/s", r.Error, r.End.SumReceived.BitsPerSecond)
		}
		return true, nil
	})
	if err != nil {
		b.Fatalf("iperf3: %v: %s", err, out)
	}
	b.Logf("iperf3 to %s: %.3f Gbit/s, %d retransmits", addr, r.End.SumReceived.BitsPerSecond/1e9, r.End.SumSent.Retransmits)
	return r.End.SumReceived.BitsPerSecond
}
