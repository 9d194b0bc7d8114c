package e2e

import (
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
)

// nrAddr is the address of link in a resource's namespace.
func nrAddr(t *testing.T, ns, link string) netip.Addr {
	t.Helper()
	addrs, err := rtnl.Addrs(ns)
	if err != nil || len(addrs[link]) == 0 {
		t.Fatalf("no address on %s in %s: %v (%v)", link, ns, addrs, err)
	}
	return addrs[link][0].Addr()
}

// relayGrid stands for the grid on the internet: at, in namespace ns, it
// relays connections to the grid's NATS port on the host's loopback.
func relayGrid(t *testing.T, ns string, at netip.AddrPort, port int) {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp", at.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
}

// decoy is a TCP listener standing for a service; it records the
// connections it accepts ("remote > local").
type decoy struct {
	name string
	ln   net.Listener
	mu   sync.Mutex // guards got
	got  []string
}

func listenDecoy(t *testing.T, ns, network, addr string) *decoy {
	t.Helper()
	d := &decoy{name: fmt.Sprintf("TCP %s in %s", addr, ns)}
	if err := netns.Do(ns, func() (err error) { d.ln, err = net.Listen(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.ln.Close() })
	go func() {
		for {
			c, err := d.ln.Accept()
			if err != nil {
				return
			}
			d.mu.Lock()
			d.got = append(d.got, c.RemoteAddr().String()+" > "+c.LocalAddr().String())
			d.mu.Unlock()
			c.Close()
		}
	}()
	return d
}

func (d *decoy) addr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(d.ln.Addr().String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (d *decoy) accepted() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.got)
}

// sink records the datagrams it receives ("from payload").
type sink struct {
	name string
	pc   net.PacketConn
	mu   sync.Mutex // guards got
	got  []string
}

func listenSink(t *testing.T, ns, network, addr string) *sink {
	t.Helper()
	s := &sink{name: fmt.Sprintf("UDP %s in %s", addr, ns)}
	if err := netns.Do(ns, func() (err error) { s.pc, err = net.ListenPacket(network, addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := s.pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ap, _ := netip.ParseAddrPort(from.String())
			s.mu.Lock()
			s.got = append(s.got, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()+" "+string(buf[:n]))
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *sink) addr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(s.pc.LocalAddr().String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (s *sink) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// tcpListeners returns the listening TCP sockets of ns, from /proc/net/tcp
// and tcp6 read inside it.
func tcpListeners(t *testing.T, ns string) []netip.AddrPort {
	t.Helper()
	out, err := netns.Run(ns, "", "cat", "/proc/net/tcp", "/proc/net/tcp6")
	if err != nil {
		t.Fatal(err)
	}
	var ls []netip.AddrPort
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != "0A" { // TCP_LISTEN
			continue
		}
		ap, err := procAddrPort(f[1])
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		ls = append(ls, ap)
	}
	t.Logf("TCP listeners in %s: %v", ns, ls)
	return ls
}

// procAddrPort parses /proc/net/tcp's "0100007F:1F90": the address as
// 32-bit words in host (little-endian) order, the port big-endian.
func procAddrPort(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	b, err := hex.DecodeString(h)
	if !ok || err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q", s)
	}
	a, _ := netip.AddrFromSlice(b)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// nsAddrs returns the addresses of ns but loopback: IPv4 and global IPv6
// over netlink, link-local IPv6 from /proc/net/if_inet6.
func nsAddrs(t *testing.T, ns string) []netip.Addr {
	t.Helper()
	addrs, err := rtnl.Addrs(ns)
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Addr
	for _, ps := range addrs {
		for _, p := range ps {
			out = append(out, p.Addr())
		}
	}
	for _, l := range ifInet6(t, ns) {
		if a := netip.MustParseAddr(strings.Fields(l)[0]); a.IsLinkLocalUnicast() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y netip.Addr) int { return x.Compare(y) })
	return slices.Compact(out)
}

// ifInet6 lists the IPv6 addresses of ns as "address link".
func ifInet6(t *testing.T, ns string) []string {
	t.Helper()
	out, err := netns.Run(ns, "", "cat", "/proc/net/if_inet6")
	if err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		b, err := hex.DecodeString(f[0])
		if err != nil || len(b) != 16 {
			continue
		}
		l = append(l, netip.AddrFrom16([16]byte(b)).String()+" "+f[5])
	}
	sort.Strings(l)
	return l
}

// targetsOf puts every listener on the addresses it answers on: a
// wildcard one on every address of its family (every address for [::],
// dual-stack), a bound one on its own; loopback ones are not reachable
// from outside and left out.
func targetsOf(ls []netip.AddrPort, addrs []netip.Addr) []netip.AddrPort {
	var out []netip.AddrPort
	for _, l := range ls {
		switch a := l.Addr(); {
		case a.IsLoopback():
		case a.IsUnspecified():
			for _, x := range addrs {
				if a.Is4() && !x.Is4() {
					continue
				}
				out = append(out, netip.AddrPortFrom(x, l.Port()))
			}
		default:
			out = append(out, l)
		}
	}
	return out
}

// netState is what a tenant must not change in a namespace.
type netState struct {
	addrs6 []string // IPv6 addresses with their link
	routes []string // IPv4 and IPv6, every table
	neigh  []rtnl.Neighbor
}

func snapshot(t *testing.T, ns string) netState {
	t.Helper()
	s := netState{addrs6: ifInet6(t, ns)}
	for _, fam := range []int{unix.AF_INET, unix.AF_INET6} {
		rs, err := rtnl.Routes(ns, fam)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			s.routes = append(s.routes, r.String())
		}
	}
	sort.Strings(s.routes)
	var err error
	if s.neigh, err = rtnl.Neighbors(ns); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkSnapshots compares before and after: same IPv6 addresses and
// routes; no neighbour entry outside the attacker's own links (own)
// changed its MAC; none at all names the attacker's MAC: the node has no
// address on a tenant's bridge or tap, so it has no reason to learn a
// tenant's MAC there, and what it learns from ARP requests it answers
// there (the weak host model) a tenant chooses, filling the neighbour
// table the node's uplink shares.
func checkSnapshots(t *testing.T, what string, before, after netState, attacker net.HardwareAddr, own []string) {
	t.Helper()
	if added, gone := diff(before.addrs6, after.addrs6); len(added)+len(gone) > 0 {
		t.Errorf("%s: IPv6 addresses changed: added %v, removed %v", what, added, gone)
	}
	if added, gone := diff(before.routes, after.routes); len(added)+len(gone) > 0 {
		t.Errorf("%s: routes changed: added %v, removed %v", what, added, gone)
	}
	was := map[string]string{}
	for _, n := range before.neigh {
		if len(n.MAC) > 0 {
			was[n.Dev+" "+n.IP.String()] = n.MAC.String()
		}
	}
	for _, n := range after.neigh {
		if len(n.MAC) == 0 {
			continue
		}
		if m, ok := was[n.Dev+" "+n.IP.String()]; ok && m != n.MAC.String() && !slices.Contains(own, n.Dev) {
			t.Errorf("%s: neighbour %s changed from %s", what, n, m)
		}
		if n.MAC.String() == attacker.String() {
			t.Errorf("%s: neighbour entry learned from the tenant's frames: %s", what, n)
		}
	}
}

func diff(before, after []string) (added, gone []string) {
	for _, a := range after {
		if !slices.Contains(before, a) {
			added = append(added, a)
		}
	}
	for _, b := range before {
		if !slices.Contains(after, b) {
			gone = append(gone, b)
		}
	}
	return added, gone
}

// httpIn gets / from addr, from inside ns.
func httpIn(ns string, addr netip.AddrPort) (string, error) {
	var c net.Conn
	if err := netns.Do(ns, func() (err error) { c, err = net.DialTimeout("tcp", addr.String(), 5*time.Second); return err }); err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.0\r\nHost: vm\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(c, 64<<10))
	return string(b), err
}

// frameLog counts, by kind and source MAC, the frames a link of the node
// receives.
type frameLog struct {
	mu sync.Mutex // guards n
	n  map[string]int
}

func (f *frameLog) count(mac net.HardwareAddr, kind string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[mac.String()+" "+kind]
}

// captureFrames records the ARP and neighbour discovery frames link of ns
// receives until t ends.
func captureFrames(t *testing.T, ns, link string) *frameLog {
	t.Helper()
	proto := int(uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8)
	fd := -1
	err := netns.Do(ns, func() error {
		ifc, err := net.InterfaceByName(link)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifc.Index})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("capturing on %s in %s: %v", link, ns, err)
	}
	tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	f := &frameLog{n: map[string]int{}}
	var stop atomic.Bool
	done := make(chan struct{})
	t.Cleanup(func() { stop.Store(true); <-done; unix.Close(fd) })
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for !stop.Load() {
			n, _, err := unix.Recvfrom(fd, buf, 0)
			if err != nil || n < 14 {
				continue
			}
			kind := ""
			switch et := uint16(buf[12])<<8 | uint16(buf[13]); {
			case et == unix.ETH_P_ARP:
				kind = "ARP"
			case et == unix.ETH_P_IPV6 && n >= 55 && buf[20] == unix.IPPROTO_ICMPV6:
				kind = map[byte]string{133: "router solicitation", 134: "router advertisement",
					135: "neighbour solicitation", 136: "neighbour advertisement"}[buf[54]]
			}
			if kind != "" {
				f.mu.Lock()
				f.n[net.HardwareAddr(buf[6:12]).String()+" "+kind]++
				f.mu.Unlock()
			}
		}
	}()
	return f
}
