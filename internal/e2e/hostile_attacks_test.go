package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/netlab"
	"github.com/zos-go/zos/internal/sys/netns"
)

// buildHostileProbe builds testdata/hostileprobe, static, for the guest.
func buildHostileProbe(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hostileprobe")
	cmd := exec.Command("go", "build", "-o", p, "./testdata/hostileprobe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building hostileprobe: %v\n%s", err, out)
	}
	return p
}

// writeExec writes an executable file.
func writeExec(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
}

// copyExec copies an executable file.
func copyExec(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// machineIP is the private IP of machine name in d's result.
func machineIP(t *testing.T, d *gridtypes.Deployment, name string) netip.Addr {
	t.Helper()
	var res gridtypes.ZMachineResult
	if err := d.Get(name).Result.Unmarshal(&res); err != nil {
		t.Fatal(err)
	}
	a, err := netip.ParseAddr(res.IP)
	if err != nil {
		t.Fatalf("machine %s: ip %q: %v", name, res.IP, err)
	}
	return a
}

// gridPort is the grid's NATS port.
func gridPort(t *testing.T, g *grid) int {
	t.Helper()
	_, p, _ := strings.Cut(strings.TrimPrefix(g.url, "nats://"), ":")
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("grid url %s: %v", g.url, err)
	}
	return port
}

// statusKiB reads a kB field (VmHWM, VmRSS) of /proc/PID/status.
func statusKiB(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// hostileServer is a zlogs output that attacks its client.
type hostileServer struct {
	name  string
	addr  string
	conns atomic.Int64
	sent  atomic.Int64
}

// serveHostile listens on ip in ns and runs attack on every connection.
func serveHostile(t *testing.T, ns string, ip netip.Addr, name string, attack func(net.Conn) int64) *hostileServer {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, 0).String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &hostileServer{name: name, addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				s.sent.Add(attack(c))
			}()
		}
	}()
	return s
}

// hostileCap bounds what a hostile server sends on one connection.
const hostileCap = 64 << 20

// redisNest answers "*1\r\n" for ever: an array of an array of ... (the
// node's reader recursed until its stack overflowed).
func redisNest(c net.Conn) int64 {
	chunk := []byte(strings.Repeat("*1\r\n", 16<<10))
	var n int64
	for n < hostileCap {
		w, err := c.Write(chunk)
		n += int64(w)
		if err != nil {
			break
		}
	}
	return n
}

// redisBig announces an array of 64M elements (the node's reader
// allocated 1 GiB for it) and waits.
func redisBig(c net.Conn) int64 {
	w, _ := c.Write([]byte("*67108864\r\n"))
	io.Copy(io.Discard, c)
	return int64(w)
}

// wsHeaders answers a websocket handshake with headers for ever.
func wsHeaders(c net.Conn) int64 {
	r := bufio.NewReader(io.LimitReader(c, 64<<10))
	for {
		l, err := r.ReadString('\n')
		if err != nil || l == "\r\n" {
			break
		}
	}
	w, err := c.Write([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"))
	n := int64(w)
	line := []byte("X-Hostile: " + strings.Repeat("a", 1000) + "\r\n")
	for err == nil && n < hostileCap {
		w, err = c.Write(line)
		n += int64(w)
	}
	return n
}

var hostileLine = regexp.MustCompile(`(?m)^HOSTILE (\S+) (\S+) (\S+) (\S+?)\r?$`)

// hostileResults reads the probe's lines: results by "check label
// target", and the VM's MAC.
func hostileResults(console string) (map[string]string, net.HardwareAddr) {
	res := map[string]string{}
	var mac net.HardwareAddr
	for _, m := range hostileLine.FindAllStringSubmatch(console, -1) {
		res[m[1]+" "+m[2]+" "+m[3]] = m[4]
		if m[1] == "self" && m[2] == "mac" {
			mac, _ = net.ParseMAC(m[4])
		}
	}
	return res, mac
}

// checkProbe asserts what the probe saw against the policy; node6 are
// the IPv6 addresses of the node's namespace ("address link").
func checkProbe(t *testing.T, p hostilePlan, res map[string]string, node6 []string) {
	t.Helper()
	var lines []string
	for k, v := range res {
		lines = append(lines, k+" "+v)
	}
	sort.Strings(lines)
	t.Logf("probe results:\n%s", strings.Join(lines, "\n"))
	check := func(key, want string) {
		t.Helper()
		got, ok := res[key]
		switch {
		case !ok:
			t.Errorf("%s: no result from the probe", key)
		case want == "open" && got != "open":
			t.Errorf("%s: got %s, want open (allowed: the control)", key, got)
		case want == "closed" && got == "open":
			t.Errorf("%s: got open, want no connection", key)
		}
	}
	direct := func(addr string) bool {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return false
		}
		if ap.Addr().Is6() && !ap.Addr().IsLinkLocalUnicast() {
			return true
		}
		for _, s := range p.Direct {
			if netip.MustParsePrefix(s).Contains(ap.Addr()) {
				return true
			}
		}
		return false
	}
	for _, tg := range p.TCP {
		check("tcp "+tg.Label+" "+tg.Addr, tg.want)
		if direct(tg.Addr) {
			check("tcp "+tg.Label+"/direct "+tg.Addr, tg.wantDirect)
		}
	}
	for k, v := range res {
		if strings.HasPrefix(k, "tcp neigh6 ") && v == "open" {
			t.Errorf("%s: got open, want no connection to a link-local neighbour", k)
		}
	}
	// Whoever answers IPv6 on the tenant's link, it is not the node.
	for k := range res {
		if a, ok := strings.CutPrefix(k, "neigh6 found "); ok {
			for _, n := range node6 {
				if strings.HasPrefix(n, a+" ") {
					t.Errorf("the node answers IPv6 on the tenant's link: %s", n)
				}
			}
			t.Logf("IPv6 neighbour of the tenant: %s", a)
		}
	}
	for _, n := range p.NATS {
		switch got := res["nats "+n.Label+" "+n.Addr]; got {
		case "accepted":
			t.Errorf("nats %s: the grid accepted an anonymous client", n.Addr)
		case "auth-refused":
		default:
			t.Logf("nats %s: %s (the control did not reach the grid)", n.Addr, got)
		}
	}
	for _, d := range p.UDP {
		if got := res["udp "+d.Label+" "+d.Src+">"+d.Dst]; got == "" {
			t.Errorf("udp %s: no result from the probe", d.Label)
		}
	}
	for _, pr := range p.RA {
		if got := res["ra prefix "+pr]; got != "sent" {
			t.Errorf("router advertisement %s: %s, want sent", pr, got)
		}
	}
}

// gatewayAttacks: A's gateways towards the node itself (IPv4-mapped too),
// the metadata address, the farm LAN and the node's side of the networks
// are refused; one towards B's VM through A's network is accepted (the
// gateway cannot know) but reaches nothing, while one towards A's own VM
// (the control) works.
func gatewayAttacks(t *testing.T, a *user, lab *netlab.Lab, node string, front netip.AddrPort, aIP, bIP netip.Addr) {
	t.Helper()
	ln1, ln2 := lab.Nodes[0], lab.Nodes[1]
	anet := "anet"
	deploy := func(name, backend string, network bool) (string, int) {
		wl := gridtypes.Workload{Name: "gw" + strings.ReplaceAll(name, "-", ""), Type: gridtypes.GatewayFQDNProxyType}
		gw := &gridtypes.GatewayFQDNProxy{FQDN: name + ".evil.example.org", GatewayBase: gridtypes.GatewayBase{Backends: []gridtypes.Backend{gridtypes.Backend(backend)}}}
		if network {
			gw.Network = &anet
		}
		if err := wl.SetData(gw); err != nil {
			t.Fatal(err)
		}
		out, errs, code := a.run("deploy", "file", "--node", node, writeJSON(t, gridtypes.Deployment{Workloads: []gridtypes.Workload{wl}}))
		return out + errs, code
	}
	for _, c := range []struct {
		name, backend string
		network       bool
	}{
		{"node-mapped", fmt.Sprintf("http://[::ffff:%s]:9900", ln1.IP), false},
		{"node-mapped-net", fmt.Sprintf("http://[::ffff:%s]:9900", ln1.IP), true},
		{"node6", fmt.Sprintf("http://[%s]:9900", ln1.IP6()), false},
		{"node-side", fmt.Sprintf("http://%s:80", network.PublicGateway), true},
		{"node-side-mapped", fmt.Sprintf("http://[::ffff:%s]:80", network.PublicGateway), true},
		{"metadata", "http://169.254.169.254:80", false},
		{"metadata-mapped", "http://[::ffff:169.254.169.254]:80", false},
		{"farm-router", fmt.Sprintf("http://%s:80", netlab.LANGateway), false},
		{"farm-node-mapped", fmt.Sprintf("http://[::ffff:%s]:80", ln2.IP), false},
		{"farm-node-net", fmt.Sprintf("http://%s:80", ln2.IP), true},
		{"farm-node6", fmt.Sprintf("http://[%s]:80", ln2.IP6()), false},
	} {
		out, code := deploy(c.name, c.backend, c.network)
		if code == 0 || !strings.Contains(out, "not allowed") {
			t.Errorf("gateway %s to %s: got exit %d, want refused (address not allowed):\n%s", c.name, c.backend, code, out)
			continue
		}
		t.Logf("gateway %s to %s refused: %s", c.name, c.backend, strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:]))
	}
	for _, c := range []struct {
		name    string
		backend netip.Addr
		want    bool
	}{{"own", aIP, true}, {"tenant-b", bIP, false}} {
		if out, code := deploy(c.name, fmt.Sprintf("http://%s:8080", c.backend), true); code != 0 {
			t.Errorf("gateway %s through A's network: exit %d\n%s", c.name, code, out)
			continue
		}
		status, body, err := gatewayGet(lab.Internet, front, c.name+".evil.example.org")
		switch {
		case c.want && (err != nil || status != 200 || !strings.Contains(body, "tenant-a")):
			t.Errorf("gateway to A's own VM (the control): got %d %q, %v", status, body, err)
		case !c.want && strings.Contains(body, "tenant-b-secret"):
			t.Errorf("gateway through A's network reached B's VM: %d %q", status, body)
		}
	}
}

// gatewayGet asks the gateway's front for https://host/ from ns.
func gatewayGet(ns string, front netip.AddrPort, host string) (int, string, error) {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test gateway's certificates are self-signed
		DialContext: func(ctx context.Context, network, _ string) (c net.Conn, err error) {
			err = netns.Do(ns, func() error {
				c, err = (&net.Dialer{}).DialContext(ctx, network, front.String())
				return err
			})
			return c, err
		},
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("https://" + host + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), err
}
