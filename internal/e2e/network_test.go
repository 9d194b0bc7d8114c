package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/mesh"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/gateway/acmetest"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/sys/wg"
	"github.com/zos-go/zos/internal/testutil"
)

// TestNetworkMesh runs three hosted nodes, each in its own namespace on a
// farm LAN: two public, one hidden. zosctl makes one network across them;
// every gateway answers from every node (the hidden one through the access
// node), the resources reach the "internet" through NAT, an access peer is
// added, and canceling the contracts removes every namespace.
func TestNetworkMesh(t *testing.T) {
	requireNodePrereqs(t)
	testutil.RequireBinary(t, "nft")
	testutil.RequireBinary(t, "busybox")
	testutil.RequireFile(t, "/dev/net/tun")
	lab := netlab.New(t, 3)
	// The ACME server checks tls-alpn-01 on node 1's gateway from the
	// internet.
	gwAddr := net.JoinHostPort(lab.Nodes[0].IP.String(), "443")
	ca, err := acmetest.Start(gwAddr, func(addr string, cfg *tls.Config) (c *tls.Conn, err error) {
		err = netns.Do(lab.Internet, func() error {
			c, err = tls.Dial("tcp", addr, cfg)
			return err
		})
		return c, err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	g := startGrid(t)
	farmer := newUser(t, g)
	var farm registry.Farm
	farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	var nodes []*node
	for i, ln := range lab.Nodes {
		args := []string{"--netns", ln.NS}
		if i == 0 {
			// Node 1 is also a gateway.
			args = append(args, "--gateway-listen", gwAddr, "--acme", ca.URL())
		}
		nodes = append(nodes, startNode(t, g, farmer.farmToken(farm.ID), args...))
	}
	for _, n := range nodes {
		n.waitRegistered(farmer)
	}
	// The farmer gives nodes 1 and 2 a public config; node 3 stays hidden.
	for i := range 2 {
		args := []string{"node", "public-config", strconv.Itoa(int(nodes[i].id)),
			"--ipv4", netip.PrefixFrom(lab.Nodes[i].IP, 24).String(), "--gw4", netlab.LANGateway.String()}
		if i == 0 {
			args = append(args, "--domain", "gw.test")
		}
		farmer.mustRun(args...)
	}

	u := newUser(t, g)
	ids := []string{}
	for _, n := range nodes {
		ids = append(ids, strconv.Itoa(int(n.id)))
	}
	start := time.Now()
	u.mustRun("network", "create", "--name", "net", "--nodes", strings.Join(ids, ","), "--ip-range", "10.20.0.0/16")
	t.Logf("network on 3 nodes created in %v", time.Since(start))
	if _, errs, code := u.run("network", "create", "--name", "net", "--nodes", ids[0]); code == 0 || !strings.Contains(errs, "already have") {
		t.Errorf("creating the network twice: got exit %d, %s", code, errs)
	}
	twin := dial(t, u).twin.ID
	netID := gridtypes.NetID(twin, "net")
	nsOf := func(i int) string { return network.NamesOf(nodes[i].prefix(), netID).NS }
	// Subnets are given in node order from x.x.2.0.
	gwOf := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 20, byte(2 + i), 1}) }

	for i := range nodes {
		if !netns.Exists(nsOf(i)) {
			t.Fatalf("node %d has no namespace %s", i+1, nsOf(i))
		}
	}
	for _, c := range [][2]int{{0, 1}, {1, 0}, {0, 2}, {2, 0}, {1, 2}, {2, 1}} {
		if ok, out := pingRetry(nsOf(c[0]), gwOf(c[1])); !ok {
			t.Errorf("node %d's resource cannot ping node %d's gateway %s: %s", c[0]+1, c[1]+1, gwOf(c[1]), out)
		}
	}
	if ok, out := pingRetry(nsOf(2), netlab.InternetHost); !ok {
		t.Errorf("the hidden node's resource cannot reach the internet: %s", out)
	}

	var ports []uint16
	u.json(&ports, "network", "ports", "--node", ids[0])
	// The network's port and the node's own (its 0-db port), which no
	// network may take.
	if len(ports) != 2 || (ports[0] != uint16(nodes[0].zdbPort) && ports[1] != uint16(nodes[0].zdbPort)) {
		t.Errorf("ports on node 1: got %v, want the network's and the 0-db port %d", ports, nodes[0].zdbPort)
	}

	conf := u.mustRun("network", "add-access", "--name", "net")
	if !strings.Contains(conf, "[Peer]") || !strings.Contains(conf, "Endpoint = "+lab.Nodes[0].IP.String()) {
		t.Errorf("wg-quick config:\n%s", conf)
	}
	out, err := netns.Run("", "", "wg", "show", network.NamesOf(nodes[0].prefix(), netID).WG, "peers")
	if err != nil || len(strings.Fields(out)) != 3 {
		t.Errorf("access node peers after add-access: got %q (%v), want 3", out, err)
	}
	laptop(t, lab, conf, gwOf(1))

	// A node that stops removes its resources; started again, it rebuilds
	// them from its store and its peers find it again.
	nodes[1].stop()
	if netns.Exists(nsOf(1)) {
		t.Errorf("namespace %s left after the node stopped", nsOf(1))
	}
	nodes[1].start()
	nodes[1].waitRegistered(u)
	if ok, out := pingRetry(nsOf(0), gwOf(1)); !ok {
		t.Errorf("node 2's gateway unreachable after its restart: %s", out)
	}

	gatewayChecks(t, lab, farmer, u, ids[0], nsOf(1), gwOf(1), ca.Roots)

	// A public IP of the farm, reserved on the contract, taken by an ip
	// workload.
	farmer.mustRun("farm", "add-ip", "--farm", strconv.Itoa(int(farm.ID)), "10.99.0.100/24", "--gw", netlab.LANGateway.String())
	ipwl := gridtypes.Workload{Name: "pub", Type: gridtypes.PublicIPType}
	if err := ipwl.SetData(&gridtypes.PublicIP{V4: true}); err != nil {
		t.Fatal(err)
	}
	var dep gridtypes.Deployment
	u.json(&dep, "deploy", "file", "--node", ids[0], writeJSON(t, gridtypes.Deployment{Workloads: []gridtypes.Workload{ipwl}}))
	var ipr gridtypes.PublicIPResult
	if wl := dep.Get("pub"); wl == nil || wl.Result.Unmarshal(&ipr) != nil || ipr.IP.String() != "10.99.0.100/24" || ipr.Gateway != "10.99.0.1" {
		t.Errorf("ip workload: got %+v", dep.Workloads)
	}

	// The zos.network.* commands.
	ud := dial(t, u)
	call := func(cmd string, req, resp any) {
		t.Helper()
		rec, err := ud.reg.Node(context.Background(), nodes[0].id)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := ud.rmb.Call(ctx, rec.TwinID, cmd, req, resp); err != nil {
			t.Errorf("%s: %v", cmd, err)
		}
	}
	var ifaces map[string][]string
	call("zos.network.interfaces", nil, &ifaces)
	if len(ifaces["eth0"]) != 1 || ifaces["eth0"][0] != lab.Nodes[0].IP.String() {
		t.Errorf("zos.network.interfaces: got %v, want eth0 %s", ifaces, lab.Nodes[0].IP)
	}
	var pc struct {
		IPv4 string `json:"ipv4"`
	}
	call("zos.network.public_config_get", nil, &pc)
	if pc.IPv4 != netip.PrefixFrom(lab.Nodes[0].IP, 24).String() {
		t.Errorf("zos.network.public_config_get: got %+v", pc)
	}
	// No router advertisement on this lab's LAN: no public IPv6.
	has6 := true
	call("zos.network.has_ipv6", nil, &has6)
	if has6 {
		t.Error("zos.network.has_ipv6: got true on a LAN without router advertisements")
	}
	var pubIPs, privIPs []string
	call("zos.network.list_public_ips", nil, &pubIPs)
	if len(pubIPs) != 1 || pubIPs[0] != "10.99.0.100/24" {
		t.Errorf("zos.network.list_public_ips: got %v", pubIPs)
	}
	call("zos.network.list_private_ips", map[string]string{"network_name": "net"}, &privIPs)
	if privIPs == nil || len(privIPs) != 0 {
		t.Errorf("zos.network.list_private_ips: got %v, want [] (no machines)", privIPs)
	}

	// Delete the network: every namespace goes; then the rest.
	u.mustRun("network", "delete", "--name", "net")
	var cs []registry.Contract
	u.json(&cs, "contract", "list")
	for _, c := range cs {
		if c.State == registry.StateCreated {
			u.mustRun("contract", "cancel", strconv.FormatUint(c.ID, 10))
		}
	}
	_ = testutil.Poll(30*time.Second, func() (bool, error) {
		for i := range nodes {
			if netns.Exists(nsOf(i)) {
				return false, nil
			}
		}
		return true, nil
	})
	for i := range nodes {
		if netns.Exists(nsOf(i)) {
			t.Errorf("namespace %s left after cancel", nsOf(i))
		}
	}
	if _, err := os.Stat("/var/run/wireguard/" + network.NamesOf(nodes[0].prefix(), netID).WG + ".sock"); err == nil {
		t.Errorf("UAPI socket left after cancel")
	}
}

func (n *node) prefix() string {
	for i, a := range n.args {
		if a == "--prefix" && i+1 < len(n.args) {
			return n.args[i+1]
		}
	}
	return ""
}

// pingRetry pings a from ns until it answers, for up to 15s, and returns
// the last try.
func pingRetry(ns string, a netip.Addr) (ok bool, out string) {
	_ = testutil.Poll(15*time.Second, func() (bool, error) {
		ok, out = netlab.Ping(ns, a, 1)
		return ok, nil
	})
	return ok, out
}

// laptop joins the farm LAN as the user's machine with the wg-quick
// config conf (a wireguard-go device stands for wg-quick) and pings target
// through the access node.
func laptop(t *testing.T, lab *netlab.Lab, conf string, target netip.Addr) {
	t.Helper()
	kv := map[string]string{}
	for _, l := range strings.Split(conf, "\n") {
		if k, v, ok := strings.Cut(l, " = "); ok {
			kv[k] = v
		}
	}
	ns := "zl" + lab.ID + "-laptop"
	if err := netns.Create(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(ns) })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rtnl.AddVeth(lab.Internet, "laptop", "lan", ns, "eth0"))
	must(rtnl.AddAddr(ns, "eth0", netip.MustParsePrefix("10.99.0.50/24")))
	priv, err := mesh.ParseKey(kv["PrivateKey"])
	must(err)
	pub, err := mesh.ParseKey(kv["PublicKey"])
	must(err)
	ep, err := netip.ParseAddrPort(kv["Endpoint"])
	must(err)
	var allowed []netip.Prefix
	for _, a := range strings.Split(kv["AllowedIPs"], ", ") {
		p, err := netip.ParsePrefix(a)
		must(err)
		allowed = append(allowed, p)
	}
	addr, err := netip.ParsePrefix(kv["Address"])
	must(err)
	name := "wl" + lab.ID
	dev, err := wg.Start(name, ns, ns, testutil.Logger(t))
	must(err)
	t.Cleanup(func() { _ = dev.Close() })
	must(dev.Configure(wg.Config{PrivateKey: priv, Peers: []wg.Peer{{PublicKey: pub, Endpoint: ep, AllowedIPs: allowed, Keepalive: 25}}}))
	must(rtnl.AddAddr(ns, name, addr))
	must(rtnl.SetUp(ns, name))
	must(rtnl.AddRoute(ns, rtnl.Route{Dst: allowed[0], Dev: name}))
	if ok, out := pingRetry(ns, target); !ok {
		t.Errorf("the laptop cannot reach %s through the access node: %s", target, out)
	}
}

// gatewayChecks: a name proxy on node 1, with a certificate from the test
// ACME server, reaches a backend in node 2's network resource over the
// user's network; a name of another twin is refused.
func gatewayChecks(t *testing.T, lab *netlab.Lab, farmer, u *user, gwNode, backendNS string, backendIP netip.Addr, roots *x509.CertPool) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(backendNS, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(backendIP.String(), "8080"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend "+r.Host) }))
	}()
	u.mustRun("name", "reserve", "app")
	farmer.mustRun("name", "reserve", "theirs")
	// Deployed as a user would: zosctl deploy gateway name.
	// Without --node, zosctl picks the one node of the network with a
	// domain: node 1.
	gw := func(name string, node ...string) []string {
		return append([]string{"deploy", "gateway", "name", "--name", name, "--workload", "gw" + name,
			"--backend", "http://" + net.JoinHostPort(backendIP.String(), "8080"), "--network", "net"}, node...)
	}
	var dep gridtypes.Deployment
	u.json(&dep, gw("app")...)
	var res gridtypes.GatewayProxyResult
	if wl := dep.Get("gwapp"); wl == nil || wl.Result.Unmarshal(&res) != nil || res.FQDN != "app.gw.test" {
		t.Errorf("gateway result: got %+v", dep.Workloads)
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots}, // the certificate comes from the test ACME server
		DialContext: func(ctx context.Context, network, _ string) (c net.Conn, err error) {
			err = netns.Do(lab.Internet, func() error {
				c, err = (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(lab.Nodes[0].IP.String(), "443"))
				return err
			})
			return c, err
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://app.gw.test/")
	if err != nil {
		t.Errorf("https://app.gw.test through the gateway: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "backend app.gw.test" {
			t.Errorf("https://app.gw.test: got %q", b)
		}
	}
	if _, errs, code := u.run(gw("theirs", "--node", gwNode)...); code == 0 || !strings.Contains(errs, "another twin") {
		t.Errorf("a name of another twin: got exit %d, %s", code, errs)
	}
}
