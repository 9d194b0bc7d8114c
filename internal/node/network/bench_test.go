package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
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
// reports both and their ratio. One iteration is enough: run it with
// -benchtime=1x.
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
	b.ResetTimer()
	var wg, under float64
	for i := 0; i < b.N; i++ {
		wg = iperf(b, nsB, nsA, gw(nb.Subnet))
		under = iperf(b, l.Nodes[1].NS, l.Nodes[0].NS, l.Nodes[1].IP)
	}
	b.ReportMetric(wg/1e9, "wg-Gbit/s")
	b.ReportMetric(under/1e9, "underlay-Gbit/s")
	b.ReportMetric(wg/under, "ratio")
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
	var out string
	err := testutil.PollEvery(5*time.Second, 100*time.Millisecond, func() (bool, error) {
		var err error
		out, err = netns.Run(clientNS, "", "iperf3", "-c", addr.String(), "-p", "5299", "-t", "3", "-J")
		return err == nil, err
	})
	if err != nil {
		b.Fatalf("iperf3: %v", err)
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		b.Fatalf("decoding iperf3 output: %v", err)
	}
	return r.End.SumReceived.BitsPerSecond
}
