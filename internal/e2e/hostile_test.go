package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/testutil"
)

// TestHostileTenant runs, on a node of the network lab (its farm LAN with
// IPv4 and IPv6, a second node, the farm router, an internet host and the
// grid's NATS port relayed on the internet), a VM of tenant A whose
// entrypoint attacks (testdata/hostileprobe), next to a VM of tenant B on
// its own network spanning both nodes. From A's VM, through its network
// and then straight onto the bridge:
//
//	target                                     policy: what A may reach
//	node: every TCP listener of its namespace   no, but the services meant for tenants (the
//	  on every address (LAN, 100.127.0.1,       0-db port, the gateway front: the front must
//	  IPv6 LAN, link-locals), incl. a host      answer through the network, a control)
//	  service on [::] and on 0.0.0.0
//	farm router, other node (v4 and v6)         no
//	internet host 198.51.100.1                  yes, through the network and NAT (a control); not on-link
//	internet over IPv6                          no: tenants get no IPv6 through the node
//	the grid's NATS port on the internet        TCP yes (it is on the internet), anonymous NATS refused
//	the grid's port at the node's addresses     no
//	B's VM, B's resource on both nodes          no
//	UDP to all of them, spoofed sources         nothing arrives; at the internet only from the node's address
//
// It also sends router advertisements, gratuitous ARP and neighbour
// advertisements for the node's, the LAN's and B's addresses, and asks the
// node with spoofed senders; afterwards the node's namespace has the same
// IPv6 addresses and the same routes, no neighbour entry of the node or of
// B's resource names A's MAC or changed, and no IPv6 address of the node
// answered A. A's zlogs point at hostile servers (a redis answering "*1\r\n"
// for ever, one answering "*67108864\r\n", a websocket sending headers for
// ever) and its gateways at the node itself, the metadata address and the
// LAN, in IPv4-mapped form too: refused. At the end both nodes run and
// answer, B's deployment is ok and its VM answers its network, and no
// decoy standing for a forbidden service accepted anything.
func TestHostileTenant(t *testing.T) {
	w := newHostileWorld(t)
	d := w.listen(t)
	plan := w.plan(t, d)
	aURL := w.hostileFlist(t, plan)

	// What must not change: the node's namespace, B's neighbours.
	if ok, out := pingRetry(w.bNet1.NS, w.bIP); !ok {
		t.Fatalf("B's resource cannot ping B's VM before the attack: %s", out)
	}
	nodeBefore, bBefore := snapshot(t, w.ln1.NS), snapshot(t, w.bNet1.NS)
	// Zlogs outputs that attack the node's reader, in A's resource.
	servers := []*hostileServer{
		serveHostile(t, w.aNet.NS, w.aGW, "redis *1 for ever", redisNest),
		serveHostile(t, w.aNet.NS, w.aGW, "redis *67108864", redisBig),
		serveHostile(t, w.aNet.NS, w.aGW, "websocket headers for ever", wsHeaders),
	}
	// The frames reaching the node at A's bridge: that the attacks were
	// delivered is the control of what follows.
	frames := captureFrames(t, w.ln1.NS, w.aNet.Bridge)

	var ad gridtypes.Deployment
	w.a.json(&ad, "deploy", "vm", "--node", w.id1, "--flist", aURL, "--network", "anet", "--memory", "256M",
		"--entrypoint", "/hostile.sh", "--name", "vm")
	for i, out := range []string{"redis://%s/nest", "redis://%s/big", "ws://%s/logs"} {
		wl := gridtypes.Workload{Name: fmt.Sprintf("zl%d", i), Type: gridtypes.ZLogsType}
		if err := wl.SetData(&gridtypes.ZLogs{ZMachine: "vm", Output: fmt.Sprintf(out, servers[i].addr)}); err != nil {
			t.Fatal(err)
		}
		ad.Workloads = append(ad.Workloads, wl)
	}
	w.a.mustRun("deployment", "update", "-f", writeJSON(t, &ad), strconv.FormatUint(ad.ContractID, 10))

	console := waitConsole(t, w.a, ad.ContractID, "vm", regexp.MustCompile(`(?m)^HOSTILE done`), 3*time.Minute)
	res, aMAC := hostileResults(console)
	if aMAC == nil {
		t.Fatalf("the probe printed no MAC:\n%s", console)
	}
	checkProbe(t, plan, res, snapshot(t, w.ln1.NS).addrs6)
	for _, k := range []string{"router advertisement", "neighbour advertisement", "neighbour solicitation", "ARP"} {
		if n := frames.count(aMAC, k); n == 0 {
			t.Errorf("no %s from the tenant reached the node's bridge: the attack was not delivered", k)
		} else {
			t.Logf("%d %s frames from the tenant reached the node's bridge", n, k)
		}
	}
	// The zlogs servers: each attacked the node, which came back for more.
	for _, s := range servers {
		waitFor(t, 60*time.Second, "the zlogs streamer to reconnect to "+s.name, func() bool { return s.conns.Load() >= 2 })
		t.Logf("zlogs output %q: %d connections, %d bytes sent", s.name, s.conns.Load(), s.sent.Load())
	}
	gatewayAttacks(t, w.a, w.lab, w.id1, w.front, machineIP(t, &ad, "vm"), w.bIP)

	// Afterwards: both nodes up and answering, B untouched, nothing
	// forbidden reached.
	w.checkNodes(t)
	w.checkB(t)
	aTap := (&primitives.ZMachineManager{Prefix: w.n1.prefix()}).TapName(ad.WorkloadID("vm"))
	checkSnapshots(t, "node 1's namespace", nodeBefore, snapshot(t, w.ln1.NS), aMAC,
		[]string{w.aNet.Bridge, w.aNet.BridgeVeth, w.aNet.PublicVeth, aTap})
	checkSnapshots(t, "B's resource", bBefore, snapshot(t, w.bNet1.NS), aMAC, nil)
	d.check(t, w.ln1.IP)
}

// hostileWorld is the lab of TestHostileTenant: two nodes (node 1 runs
// VMs and is a gateway), tenant B's VM on node 1 on a network spanning
// both, tenant A's network on node 1.
type hostileWorld struct {
	lab      *netlab.Lab
	ln1, ln2 netlab.Node
	g        *grid
	farmer   *user
	n1, n2   *node
	id1, id2 string
	front    netip.AddrPort // node 1's gateway
	probe    string         // the built probe

	a, b         *user
	aNet         network.Names
	aGW          netip.Addr // A's resource on node 1
	bNet1, bNet2 network.Names
	bd           gridtypes.Deployment
	bIP          netip.Addr
	bMAC         net.HardwareAddr
	bGW1, bGW2   netip.Addr // B's resources
	bPub         netip.Addr // B's resource towards node 1
}

func newHostileWorld(t *testing.T) *hostileWorld {
	cache := requireVMPrereqs(t)
	testutil.RequireBinary(t, "nft")
	w := &hostileWorld{probe: buildHostileProbe(t), lab: netlab.New(t, 2)}
	w.lab.AddIPv6(t)
	w.ln1, w.ln2 = w.lab.Nodes[0], w.lab.Nodes[1]
	w.g = startGrid(t)
	w.farmer = newUser(t, w.g)
	w.front = netip.AddrPortFrom(w.ln1.IP, 443)
	w.n1 = vmNode(t, w.g, w.farmer, cache, "--netns", w.ln1.NS, "--gateway-listen", w.front.String(), "--gateway-self-signed")
	var farm registry.Farm
	w.farmer.json(&farm, "farm", "create", "farm"+strconv.Itoa(testutil.FreePort(t)))
	w.n2 = startNode(t, w.g, w.farmer.farmToken(farm.ID), "--netns", w.ln2.NS)
	w.n2.waitRegistered(w.farmer)
	fd := dial(t, w.farmer)
	for i, n := range []*node{w.n1, w.n2} {
		pc := &registry.PublicConfig{IPv4: netip.PrefixFrom(w.lab.Nodes[i].IP, 24).String(), GW4: netlab.LANGateway.String()}
		if i == 0 {
			pc.Domain = "gw.test"
		}
		if err := fd.reg.SetPublicConfig(context.Background(), n.id, pc); err != nil {
			t.Fatal(err)
		}
	}
	w.id1, w.id2 = strconv.Itoa(int(w.n1.id)), strconv.Itoa(int(w.n2.id))

	// Tenant B: a network on both nodes, a VM on node 1 serving HTTP.
	w.b = newUser(t, w.g)
	w.b.mustRun("network", "create", "--name", "bnet", "--nodes", w.id1+","+w.id2, "--ip-range", "10.41.0.0/16")
	root := t.TempDir()
	buildRootfs(t, root)
	writeExec(t, filepath.Join(root, "tenant-b.sh"), tenantBScript)
	w.b.json(&w.bd, "deploy", "vm", "--node", w.id1, "--flist", publishFlist(t, w.b, root, "tenantb"), "--network", "bnet",
		"--memory", "256M", "--entrypoint", "/tenant-b.sh", "--name", "b")
	w.bIP = machineIP(t, &w.bd, "b")
	w.bNet1 = network.NamesOf(w.n1.prefix(), gridtypes.NetID(w.bd.TwinID, "bnet"))
	w.bNet2 = network.NamesOf(w.n2.prefix(), gridtypes.NetID(w.bd.TwinID, "bnet"))

	// Tenant A's network, while B's VM boots.
	w.a = newUser(t, w.g)
	w.a.mustRun("network", "create", "--name", "anet", "--nodes", w.id1, "--ip-range", "10.40.0.0/16")
	w.aNet = network.NamesOf(w.n1.prefix(), gridtypes.NetID(dial(t, w.a).twin.ID, "anet"))
	w.aGW = nrAddr(t, w.aNet.NS, w.aNet.NRVeth)

	log := waitConsole(t, w.b, w.bd.ContractID, "b", regexp.MustCompile(`B-UP mac=\S+`), 2*time.Minute)
	mac, err := net.ParseMAC(regexp.MustCompile(`B-UP mac=(\S+)`).FindStringSubmatch(log)[1])
	if err != nil {
		t.Fatal(err)
	}
	w.bMAC = mac
	w.bGW1, w.bGW2 = nrAddr(t, w.bNet1.NS, w.bNet1.NRVeth), nrAddr(t, w.bNet2.NS, w.bNet2.NRVeth)
	w.bPub = nrAddr(t, w.bNet1.NS, network.PublicIface)
	if body, err := httpIn(w.bNet1.NS, netip.AddrPortFrom(w.bIP, 8080)); !strings.Contains(body, "tenant-b-secret") {
		t.Fatalf("B's VM does not serve its network before the attack: %q, %v", body, err)
	}
	return w
}

// hostileListeners stand for what A aims at: decoys for services that
// must stay out of reach (a host service of each node on [::] and on
// 0.0.0.0, the farm router, B's resources), the internet host (the
// allowed control), the grid relayed on the internet, UDP sinks.
type hostileListeners struct {
	nodeSvc6, nodeSvc4, n2Svc, router4, router6, inet4, inet6, bSvc1, bSvc2 *decoy
	nodeUDP, n2UDP, bUDP, inetUDP, routerUDP                                *sink
	natsPort                                                                int
}

func (w *hostileWorld) listen(t *testing.T) *hostileListeners {
	n1, n2, inet := w.ln1.NS, w.ln2.NS, w.lab.Internet
	at := func(a netip.Addr) string { return netip.AddrPortFrom(a, 0).String() }
	d := &hostileListeners{
		nodeSvc6: listenDecoy(t, n1, "tcp", "[::]:0"), nodeSvc4: listenDecoy(t, n1, "tcp4", "0.0.0.0:0"),
		n2Svc:   listenDecoy(t, n2, "tcp", "[::]:0"),
		router4: listenDecoy(t, inet, "tcp", at(netlab.LANGateway)), router6: listenDecoy(t, inet, "tcp", at(netlab.LANGateway6)),
		inet4: listenDecoy(t, inet, "tcp", at(netlab.InternetHost)), inet6: listenDecoy(t, inet, "tcp", at(netlab.InternetHost6)),
		bSvc1: listenDecoy(t, w.bNet1.NS, "tcp4", "0.0.0.0:0"), bSvc2: listenDecoy(t, w.bNet2.NS, "tcp4", "0.0.0.0:0"),
		nodeUDP: listenSink(t, n1, "udp", "[::]:0"), n2UDP: listenSink(t, n2, "udp", "[::]:0"),
		bUDP:    listenSink(t, w.bNet1.NS, "udp4", "0.0.0.0:0"),
		inetUDP: listenSink(t, inet, "udp", at(netlab.InternetHost)), routerUDP: listenSink(t, inet, "udp", at(netlab.LANGateway)),
		natsPort: gridPort(t, w.g),
	}
	relayGrid(t, inet, netip.AddrPortFrom(netlab.InternetHost, uint16(d.natsPort)), d.natsPort)
	return d
}

// check: no decoy accepted, no sink received, the controls did and only
// from the node's address (NAT).
func (d *hostileListeners) check(t *testing.T, node netip.Addr) {
	t.Helper()
	for _, dc := range []*decoy{d.nodeSvc6, d.nodeSvc4, d.n2Svc, d.router4, d.router6, d.inet6, d.bSvc1, d.bSvc2} {
		if got := dc.accepted(); len(got) > 0 {
			t.Errorf("%s accepted connections: %v", dc.name, got)
		}
	}
	for _, s := range []*sink{d.nodeUDP, d.n2UDP, d.bUDP, d.routerUDP} {
		if got := s.received(); len(got) > 0 {
			t.Errorf("%s received datagrams: %v", s.name, got)
		}
	}
	got := d.inet4.accepted()
	if len(got) == 0 {
		t.Error("the internet host got no connection: the control failed")
	}
	for _, c := range got {
		if !strings.HasPrefix(c, node.String()+":") {
			t.Errorf("the internet host got a connection from %s, want only the node's address (NAT)", c)
		}
	}
	control := false
	t.Logf("datagrams at the internet host: %v", d.inetUDP.received())
	for _, dg := range d.inetUDP.received() {
		if !strings.HasPrefix(dg, node.String()+":") {
			t.Errorf("the internet host got a datagram %q, want only from the node's address (NAT)", dg)
		}
		control = control || strings.HasSuffix(dg, "hostile control")
	}
	if !control {
		t.Error("the internet host got no control datagram: the UDP path did not work")
	}
}

// plan lists what the probe tries: every TCP listener of both nodes'
// namespaces on every address they have, the decoys, datagrams, the
// addresses claimed and the prefix announced.
func (w *hostileWorld) plan(t *testing.T, d *hostileListeners) hostilePlan {
	ln1, ln2 := w.ln1, w.ln2
	tenantPorts := []uint16{uint16(w.n1.zdbPort), w.front.Port()}
	nodeAddrs := nsAddrs(t, ln1.NS)
	var ts []hostileTarget
	seen := map[string]bool{}
	add := func(label string, ap netip.AddrPort, want, wantDirect string) {
		if !seen[ap.String()] {
			seen[ap.String()] = true
			ts = append(ts, hostileTarget{Label: label, Addr: ap.String(), want: want, wantDirect: wantDirect})
		}
	}
	var llPorts []int
	for _, ap := range targetsOf(tcpListeners(t, ln1.NS), nodeAddrs) {
		switch {
		case ap == w.front:
			add("node-gateway-front", ap, "open", "")
		case slices.Contains(tenantPorts, ap.Port()):
			add("node-tenant-port", ap, "", "")
		default:
			add("node", ap, "closed", "closed")
		}
		if !slices.Contains(llPorts, int(ap.Port())) {
			llPorts = append(llPorts, int(ap.Port()))
		}
	}
	for _, ap := range targetsOf(tcpListeners(t, ln2.NS), nsAddrs(t, ln2.NS)) {
		// 100.127.0.1 is on every node, node 1's for A's VM.
		if !network.PublicRange.Contains(ap.Addr()) {
			add("farm-node", ap, "closed", "closed")
		}
	}
	nats := uint16(d.natsPort)
	for _, c := range []struct {
		label string
		ap    netip.AddrPort
		want  string
	}{
		{"farm-router", d.router4.addr(), "closed"}, {"farm-router", d.router6.addr(), "closed"},
		{"internet", d.inet4.addr(), "open"}, {"internet6", d.inet6.addr(), "closed"},
		{"grid-at-node", netip.AddrPortFrom(ln1.IP, nats), "closed"},
		{"grid-at-node", netip.AddrPortFrom(ln1.IP6(), nats), "closed"},
		{"tenant-b-vm", netip.AddrPortFrom(w.bIP, 8080), "closed"},
		{"tenant-b-net", netip.AddrPortFrom(w.bGW1, d.bSvc1.addr().Port()), "closed"},
		{"tenant-b-net", netip.AddrPortFrom(w.bPub, d.bSvc1.addr().Port()), "closed"},
		{"tenant-b-net", netip.AddrPortFrom(w.bGW2, d.bSvc2.addr().Port()), "closed"},
	} {
		add(c.label, c.ap, c.want, "closed")
	}
	var nodeLL []string
	for _, a := range nodeAddrs {
		if a.IsLinkLocalUnicast() {
			nodeLL = append(nodeLL, a.String())
		}
	}
	port := func(a netip.Addr, s *sink) string { return netip.AddrPortFrom(a, s.addr().Port()).String() }
	inet := port(netlab.InternetHost, d.inetUDP)
	return hostilePlan{
		Iface: "eth0", Self6: "2001:db8:bad::66/64", TCP: ts, LLPorts: llPorts,
		Direct: []string{"10.99.0.0/24", "100.127.0.0/16", "198.51.100.0/24", "10.41.0.0/16"},
		NATS:   []hostileTarget{{Label: "grid-internet", Addr: netip.AddrPortFrom(netlab.InternetHost, nats).String()}},
		UDP: []hostileUDP{
			{Label: "control", Dst: inet},
			{Label: "node", Dst: port(ln1.IP, d.nodeUDP)},
			{Label: "node", Dst: port(network.PublicGateway, d.nodeUDP)},
			{Label: "node6", Dst: port(ln1.IP6(), d.nodeUDP)},
			{Label: "farm-router", Dst: d.routerUDP.addr().String()},
			{Label: "farm-node", Dst: port(ln2.IP, d.n2UDP)},
			{Label: "tenant-b", Dst: port(w.bGW1, d.bUDP)},
			{Label: "spoof-b-to-b", Src: w.bIP.String(), Dst: port(w.bGW1, d.bUDP)},
			{Label: "spoof-lan-to-node", Src: ln2.IP.String(), Dst: port(ln1.IP, d.nodeUDP)},
			{Label: "spoof-router-to-node", Src: netlab.LANGateway.String(), Dst: port(network.PublicGateway, d.nodeUDP)},
			{Label: "spoof-node-to-lan", Src: ln1.IP.String(), Dst: port(ln2.IP, d.n2UDP)},
			{Label: "spoof-b-to-internet", Src: w.bIP.String(), Dst: inet},
			{Label: "spoof-lan-to-internet", Src: ln2.IP.String(), Dst: inet},
			{Label: "spoof6-router-to-node", Src: netlab.LANGateway6.String(), Dst: port(ln1.IP6(), d.nodeUDP)},
			{Label: "spoof6-lan-to-lan", Src: ln1.IP6().String(), Dst: port(ln2.IP6(), d.n2UDP)},
		},
		ARP: []string{w.bIP.String(), w.bGW1.String(), w.bPub.String(), ln1.IP.String(), network.PublicGateway.String(),
			netlab.LANGateway.String(), ln2.IP.String()},
		ARPAsk: []string{ln1.IP.String(), network.PublicGateway.String()},
		NA: append([]string{ln1.IP6().String(), netlab.LANGateway6.String(), ln2.IP6().String(),
			netlab.LinkLocal(w.bMAC).String()}, nodeLL...),
		NSAsk: append([]string{ln1.IP6().String()}, nodeLL...),
		RA:    []string{"2001:db8:bad::/64"},
	}
}

// hostileFlist publishes A's root: busybox, an HTTP page, the probe and
// its plan.
func (w *hostileWorld) hostileFlist(t *testing.T, plan hostilePlan) string {
	root := t.TempDir()
	buildRootfs(t, root)
	writeExec(t, filepath.Join(root, "hostile.sh"), hostileScript)
	copyExec(t, w.probe, filepath.Join(root, "hostileprobe"))
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "plan.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return publishFlist(t, w.a, root, "hostile")
}

// checkNodes: both node processes run, logged no crash, node 1's memory
// stayed bounded, and its API answers.
func (w *hostileWorld) checkNodes(t *testing.T) {
	t.Helper()
	for _, n := range []*node{w.n1, w.n2} {
		select {
		case <-n.proc.done:
			t.Fatalf("node %d exited", n.id)
		default:
		}
		for _, bad := range []string{"fatal error:", "panic:", "[running]:"} {
			if strings.Contains(n.proc.output(), bad) {
				t.Errorf("node %d logged %q", n.id, bad)
			}
		}
	}
	hwm := statusKiB(w.n1.proc.cmd.Process.Pid, "VmHWM")
	t.Logf("node 1's peak resident memory: %d MiB", hwm>>10)
	if hwm > 512<<10 {
		t.Errorf("node 1 peaked at %d MiB resident, want under 512 MiB: a hostile output made it allocate", hwm>>10)
	}
	w.farmer.mustRun("node", "stats", w.id1)
}

// checkB: B's deployment is ok on node 1, its VM serves its network, its
// resource reaches its VM (with B's MAC) and node 2 over the mesh.
func (w *hostileWorld) checkB(t *testing.T) {
	t.Helper()
	var deps []gridtypes.Deployment
	w.b.json(&deps, "deployment", "list", "--node", w.id1)
	if len(deps) == 0 {
		t.Error("B's deployment is gone from node 1")
	}
	for _, d := range deps {
		for _, wl := range d.Workloads {
			if wl.Result.State != gridtypes.StateOk {
				t.Errorf("B's workload %s: state %q (%s), want ok", wl.Name, wl.Result.State, wl.Result.Error)
			}
		}
	}
	if body, err := httpIn(w.bNet1.NS, netip.AddrPortFrom(w.bIP, 8080)); !strings.Contains(body, "tenant-b-secret") {
		t.Errorf("B's VM no longer serves its network: %q, %v", body, err)
	}
	if ok, out := pingRetry(w.bNet1.NS, w.bGW2); !ok {
		t.Errorf("B's network no longer reaches its resource on node 2: %s", out)
	}
	if ok, out := pingRetry(w.bNet1.NS, w.bIP); !ok {
		t.Errorf("B's resource no longer reaches B's VM: %s", out)
	}
	for _, n := range snapshot(t, w.bNet1.NS).neigh {
		if n.IP == w.bIP && n.MAC.String() != w.bMAC.String() {
			t.Errorf("B's resource has B's VM at %s, want %s", n.MAC, w.bMAC)
		}
	}
}

// tenantBScript serves a page on B's network and prints the VM's MAC.
const tenantBScript = `#!/bin/sh
/bin/busybox mkdir -p /www
echo tenant-b-secret > /www/index.html
/bin/busybox httpd -p 8080 -h /www
echo "B-UP mac=$(cat /sys/class/net/eth0/address)"
exec sleep 2147483647
`

// hostileScript serves a page (the gateway's control) and runs the probe.
const hostileScript = `#!/bin/sh
/bin/busybox mkdir -p /www
echo tenant-a > /www/index.html
/bin/busybox httpd -p 8080 -h /www
/hostileprobe /plan.json
exec sleep 2147483647
`

// hostilePlan is the probe's plan (testdata/hostileprobe reads the same
// fields).
type hostilePlan struct {
	Iface   string          `json:"iface"`
	Self6   string          `json:"self6"`
	TCP     []hostileTarget `json:"tcp"`
	LLPorts []int           `json:"ll_ports"`
	Direct  []string        `json:"direct"`
	NATS    []hostileTarget `json:"nats"`
	UDP     []hostileUDP    `json:"udp"`
	ARP     []string        `json:"arp"`
	ARPAsk  []string        `json:"arp_ask"`
	NA      []string        `json:"na"`
	NSAsk   []string        `json:"ns_ask"`
	RA      []string        `json:"ra"`
}

// hostileTarget is a TCP target; want and wantDirect are what the policy
// says through the network and on-link: "open" (offered, a control),
// "closed" (must not connect) or "" (not asserted).
type hostileTarget struct {
	Label      string `json:"label"`
	Addr       string `json:"addr"`
	want       string
	wantDirect string
}

type hostileUDP struct {
	Label string `json:"label"`
	Src   string `json:"src,omitempty"`
	Dst   string `json:"dst"`
}
