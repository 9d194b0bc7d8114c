// Command hostileprobe is the entrypoint program of the hostile tenant's
// VM in the e2e test TestHostileTenant. It reads the plan the test wrote
// into the flist (/plan.json, or the file named by its argument: what to try, at which addresses) and does it
// from inside the guest, as root, printing one line per check on the
// console for the test to read back:
//
//	HOSTILE <check> <label> <target> <result>
//
// In order: it gives itself an IPv6 address, finds the link-local
// neighbours of its link, connects over TCP to every target through its
// gateway (and speaks anonymous NATS to the grid targets), sends UDP
// datagrams with true and spoofed source addresses, claims other hosts'
// addresses with gratuitous ARP and neighbour advertisements, announces
// itself as an IPv6 router, then routes the targets on-link (straight onto
// the bridge, past its network resource) and connects again. The last line
// is "HOSTILE done - - -".
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// plan is what the test asks for (the test writes the same fields).
type plan struct {
	Iface   string     `json:"iface"`    // the guest's link, eth0
	Self6   string     `json:"self6"`    // an IPv6 address/prefix the guest gives itself
	TCP     []target   `json:"tcp"`      // connected to through the gateway, and on-link when in Direct
	LLPorts []int      `json:"ll_ports"` // tried on every link-local neighbour found
	Direct  []string   `json:"direct"`   // prefixes routed on-link for the second round
	NATS    []target   `json:"nats"`     // NATS servers: anonymous CONNECT and PING
	UDP     []datagram `json:"udp"`
	ARP     []string   `json:"arp"`     // IPv4 addresses claimed (gratuitous ARP)
	ARPAsk  []string   `json:"arp_ask"` // asked for with a claimed address as sender
	NA      []string   `json:"na"`      // IPv6 addresses claimed (neighbour advertisements)
	NSAsk   []string   `json:"ns_ask"`  // solicited with a claimed address as source
	RA      []string   `json:"ra"`      // prefixes announced in router advertisements
}

type target struct {
	Label string `json:"label"`
	Addr  string `json:"addr"` // host:port; a link-local host gets the guest's link as zone
}

type datagram struct {
	Label string `json:"label"`
	Src   string `json:"src"` // "" for the guest's own address; else spoofed
	Dst   string `json:"dst"` // host:port
}

func main() {
	path := "/plan.json"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	b, err := os.ReadFile(path)
	if err != nil {
		say("plan", "-", path, "error:"+word(err))
		say("done", "-", "-", "-")
		return
	}
	var p plan
	if err := json.Unmarshal(b, &p); err != nil {
		say("plan", "-", path, "error:"+word(err))
		say("done", "-", "-", "-")
		return
	}
	run(&p)
	say("done", "-", "-", "-")
}

var out = struct {
	sync.Mutex
	w *bufio.Writer
}{w: bufio.NewWriter(os.Stdout)}

// say prints one check line (whole, even from several goroutines).
func say(check, label, target, result string) {
	out.Lock()
	defer out.Unlock()
	fmt.Fprintf(out.w, "HOSTILE %s %s %s %s\n", check, dash(label), dash(target), dash(result))
	out.w.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, " ", "_")
}

// word is an error as one token.
func word(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

func run(p *plan) {
	ifc, err := net.InterfaceByName(p.Iface)
	if err != nil {
		say("self", "iface", p.Iface, "error:"+word(err))
		return
	}
	// The link-local address must have passed duplicate address detection
	// to be a source the kernel uses; the frames below carry it anyway.
	ll := waitLinkLocal(p.Iface, 5*time.Second)
	if !ll.IsValid() {
		ll = eui64(ifc.HardwareAddr)
	}
	say("self", "mac", p.Iface, ifc.HardwareAddr.String())
	say("self", "ll", p.Iface, ll.String())

	// An IPv6 address of its own: what a host gets from the prefix it
	// announces, used as the source for global IPv6 targets.
	os.WriteFile("/proc/sys/net/ipv6/conf/"+p.Iface+"/accept_dad", []byte("0"), 0o644)
	if p.Self6 != "" {
		say("setup", "self6", p.Self6, ipcmd("-6", "addr", "add", p.Self6, "dev", p.Iface))
	}

	neigh := neighbours6(ifc, 2*time.Second)
	for _, a := range neigh {
		say("neigh6", "found", a.String(), "-")
	}
	say("neigh6", "count", p.Iface, fmt.Sprint(len(neigh)))
	// IPv6 has no gateway here: every neighbour found is tried as one.
	if len(neigh) > 0 {
		say("setup", "route6", "default_via_"+neigh[0].String(), ipcmd("-6", "route", "replace", "default", "via", neigh[0].String(), "dev", p.Iface))
	} else {
		say("setup", "route6", "default_on-link", ipcmd("-6", "route", "replace", "default", "dev", p.Iface))
	}

	// Round 1: through the gateway (the network resource).
	var ts []target
	ts = append(ts, p.TCP...)
	for _, a := range neigh {
		for _, port := range p.LLPorts {
			ts = append(ts, target{Label: "neigh6", Addr: net.JoinHostPort(a.String(), fmt.Sprint(port))})
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); connectAll(ts, p.Iface, "") }()
	go func() {
		defer wg.Done()
		for _, t := range p.NATS {
			say("nats", t.Label, t.Addr, natsAnon(t.Addr))
		}
	}()
	wg.Wait()

	for _, d := range p.UDP {
		say("udp", d.Label, d.Src+">"+d.Dst, sendUDP(d))
	}

	// Layer 2: claim addresses, announce a router.
	for range 3 {
		for _, a := range p.ARP {
			claim, err := netip.ParseAddr(a)
			if err != nil || !claim.Is4() {
				continue
			}
			// Gratuitous request and unsolicited reply.
			send := func(op uint16, spa, tpa netip.Addr, tha net.HardwareAddr) error {
				return arp(ifc, op, spa, tpa, tha)
			}
			res := result(errors.Join(
				send(1, claim, claim, make(net.HardwareAddr, 6)),
				send(2, claim, claim, broadcast)))
			// Questions with the claimed address as sender: a host that
			// answers learns it with the guest's MAC.
			for _, q := range p.ARPAsk {
				if qa, err := netip.ParseAddr(q); err == nil && qa.Is4() && qa != claim {
					if err := send(1, claim, qa, make(net.HardwareAddr, 6)); err != nil {
						res = "error:" + word(err)
					}
				}
			}
			say("arp", "claim", a, res)
		}
		for _, a := range p.NA {
			claim, err := netip.ParseAddr(a)
			if err != nil || !claim.Is6() {
				continue
			}
			res := result(ndp(ifc, ll, allNodes, neighbourAdvert(claim, ifc.HardwareAddr)))
			for _, q := range p.NSAsk {
				if qa, err := netip.ParseAddr(q); err == nil && qa != claim {
					if err := ndp(ifc, claim, solicitedNode(qa), neighbourSolicit(qa, ifc.HardwareAddr)); err != nil {
						res = "error:" + word(err)
					}
				}
			}
			say("na", "claim", a, res)
		}
		for _, pr := range p.RA {
			prefix, err := netip.ParsePrefix(pr)
			if err != nil {
				say("ra", "prefix", pr, "error:"+word(err))
				continue
			}
			say("ra", "prefix", pr, result(ndp(ifc, ll, allNodes, routerAdvert(prefix, ifc.HardwareAddr))))
		}
		time.Sleep(300 * time.Millisecond)
	}

	// Round 2: the targets on-link, straight onto the bridge.
	var direct []target
	for _, pr := range p.Direct {
		say("setup", "onlink", pr, ipcmd("route", "replace", pr, "dev", p.Iface))
	}
	say("setup", "onlink", "::/0", ipcmd("-6", "route", "replace", "default", "dev", p.Iface))
	for _, t := range p.TCP {
		ap, err := netip.ParseAddrPort(t.Addr)
		if err != nil {
			continue
		}
		in := ap.Addr().Is6() && !ap.Addr().IsLinkLocalUnicast()
		for _, pr := range p.Direct {
			if q, err := netip.ParsePrefix(pr); err == nil && q.Contains(ap.Addr()) {
				in = true
			}
		}
		if in {
			direct = append(direct, t)
		}
	}
	connectAll(direct, p.Iface, "/direct")
	time.Sleep(time.Second)
}

func result(err error) string {
	if err != nil {
		return "error:" + word(err)
	}
	return "sent"
}

// ipcmd runs busybox ip and returns "ok" or its error.
func ipcmd(args ...string) string {
	b, err := exec.Command("/bin/busybox", append([]string{"ip"}, args...)...).CombinedOutput()
	if err != nil {
		return "error:" + strings.ReplaceAll(strings.TrimSpace(string(b)), " ", "_")
	}
	return "ok"
}

// connectAll connects to every target at once (a dropped SYN costs the
// timeout once, not per target) and prints the result of each.
func connectAll(ts []target, iface, suffix string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 48)
	for _, t := range ts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			say("tcp", t.Label+suffix, t.Addr, dialResult(zoned(t.Addr, iface)))
		}()
	}
	wg.Wait()
}

// zoned adds the link as zone to a link-local host.
func zoned(addr, iface string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().IsLinkLocalUnicast() || ap.Addr().Zone() != "" {
		return addr
	}
	return netip.AddrPortFrom(ap.Addr().WithZone(iface), ap.Port()).String()
}

const timeout = 4 * time.Second

// dialResult is open, refused, unreachable, timeout or error:<errno>.
func dialResult(addr string) string {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err == nil {
		c.Close()
		return "open"
	}
	return dialError(err)
}

func dialError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "error:" + word(err)
}

// natsAnon connects to a NATS server without credentials: accepted (PONG
// or +OK), auth-refused (-ERR), no-answer, or the connection's failure.
func natsAnon(addr string) string {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return dialError(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * timeout))
	r := bufio.NewReader(c)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "INFO ") {
		return "no-info"
	}
	if _, err := c.Write([]byte("CONNECT {\"verbose\":true,\"pedantic\":false,\"name\":\"hostile\"}\r\nPING\r\nSUB > 1\r\n")); err != nil {
		return "error:" + word(err)
	}
	res := "no-answer"
	for {
		l, err := r.ReadString('\n')
		switch {
		case strings.HasPrefix(l, "PONG"), strings.HasPrefix(l, "+OK"):
			return "accepted"
		case strings.HasPrefix(l, "-ERR"):
			res = "auth-refused"
		}
		if err != nil {
			return res
		}
	}
}

// sendUDP sends three copies of a datagram naming its label, from the
// guest's address or a spoofed one.
func sendUDP(d datagram) string {
	dst, err := netip.ParseAddrPort(d.Dst)
	if err != nil {
		return "error:" + word(err)
	}
	payload := []byte("hostile " + d.Label)
	for range 3 {
		if d.Src == "" {
			c, err := net.Dial("udp", d.Dst)
			if err != nil {
				return dialError(err)
			}
			_, err = c.Write(payload)
			c.Close()
			if err != nil {
				return dialError(err)
			}
			continue
		}
		src, err := netip.ParseAddr(d.Src)
		if err != nil {
			return "error:" + word(err)
		}
		if err := rawUDP(src, dst, payload); err != nil {
			return "error:" + word(err)
		}
	}
	return "sent"
}

// rawUDP sends a UDP datagram with any source address through a raw
// socket whose packets carry their own IP header (IPPROTO_RAW).
func rawUDP(src netip.Addr, dst netip.AddrPort, payload []byte) error {
	udp := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], 40404)
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	copy(udp[8:], payload)
	if src.Is4() != dst.Addr().Is4() {
		return errors.New("source and destination of different families")
	}
	if src.Is4() {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
		ip[8], ip[9] = 64, unix.IPPROTO_UDP
		s, d := src.As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		// The UDP checksum is optional over IPv4; the kernel fills the
		// header's.
		return unix.Sendto(fd, append(ip, udp...), 0, &unix.SockaddrInet4{Addr: d})
	}
	binary.BigEndian.PutUint16(udp[6:], checksum6(src, dst.Addr(), unix.IPPROTO_UDP, udp))
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW, unix.IPPROTO_RAW)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	pkt := ipv6Header(src, dst.Addr(), unix.IPPROTO_UDP, 64, udp)
	return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet6{Addr: dst.Addr().As16()})
}

func ipv6Header(src, dst netip.Addr, next byte, hops byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, hops
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, payload...)
}

// checksum6 is the internet checksum of an upper-layer packet over IPv6
// (RFC 8200 8.1), with its own checksum field zero.
func checksum6(src, dst netip.Addr, next byte, b []byte) uint16 {
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(b)))
	l[7] = next
	add(l[:])
	add(b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 && next == unix.IPPROTO_UDP {
		c = 0xffff
	}
	return c
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packet sends an L3 payload of protocol proto to MAC dst on ifc (the
// kernel adds the Ethernet header).
func packet(ifc *net.Interface, proto uint16, dst net.HardwareAddr, payload []byte) error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(proto)))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrLinklayer{Protocol: htons(proto), Ifindex: ifc.Index, Halen: 6}
	copy(sa.Addr[:], dst)
	return unix.Sendto(fd, payload, 0, sa)
}

// arp sends an ARP packet (op 1 request, 2 reply) from the guest's MAC
// with sender address spa about tpa, to every host of the link.
func arp(ifc *net.Interface, op uint16, spa, tpa netip.Addr, tha net.HardwareAddr) error {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(b[2:], 0x0800) // IPv4
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:], ifc.HardwareAddr)
	s, t := spa.As4(), tpa.As4()
	copy(b[14:], s[:])
	copy(b[18:], tha)
	copy(b[24:], t[:])
	return packet(ifc, unix.ETH_P_ARP, broadcast, b)
}

var allNodes = netip.MustParseAddr("ff02::1")

// multicastMAC is the Ethernet address of an IPv6 multicast group.
func multicastMAC(a netip.Addr) net.HardwareAddr {
	b := a.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

func solicitedNode(a netip.Addr) netip.Addr {
	b := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 11: 1, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]})
}

// ndp sends an ICMPv6 message from src to the multicast group dst with
// hop limit 255, as neighbour discovery requires.
func ndp(ifc *net.Interface, src, dst netip.Addr, icmp []byte) error {
	binary.BigEndian.PutUint16(icmp[2:], checksum6(src, dst, unix.IPPROTO_ICMPV6, icmp))
	return packet(ifc, unix.ETH_P_IPV6, multicastMAC(dst), ipv6Header(src, dst, unix.IPPROTO_ICMPV6, 255, icmp))
}

// neighbourAdvert claims target for mac (override set).
func neighbourAdvert(target netip.Addr, mac net.HardwareAddr) []byte {
	b := make([]byte, 24, 32)
	b[0] = 136
	b[4] = 0x20 // override
	t := target.As16()
	copy(b[8:], t[:])
	return append(b, append([]byte{2, 1}, mac...)...)
}

// neighbourSolicit asks for target, giving mac as the source's.
func neighbourSolicit(target netip.Addr, mac net.HardwareAddr) []byte {
	b := make([]byte, 24, 32)
	b[0] = 135
	t := target.As16()
	copy(b[8:], t[:])
	return append(b, append([]byte{1, 1}, mac...)...)
}

// routerAdvert announces a default router (lifetime 30 min) and prefix
// for on-link and address autoconfiguration.
func routerAdvert(prefix netip.Prefix, mac net.HardwareAddr) []byte {
	b := make([]byte, 16, 56)
	b[0] = 134
	b[4] = 64
	binary.BigEndian.PutUint16(b[6:], 1800)
	b = append(b, append([]byte{1, 1}, mac...)...)
	pio := make([]byte, 32)
	pio[0], pio[1], pio[2], pio[3] = 3, 4, byte(prefix.Bits()), 0xc0
	binary.BigEndian.PutUint32(pio[4:], 86400)
	binary.BigEndian.PutUint32(pio[8:], 14400)
	a := prefix.Masked().Addr().As16()
	copy(pio[16:], a[:])
	return append(b, pio...)
}

// waitLinkLocal waits until iface has a link-local address that is no
// longer tentative (/proc/net/if_inet6 flag 0x40) and returns it.
func waitLinkLocal(iface string, wait time.Duration) netip.Addr {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile("/proc/net/if_inet6")
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 6 || f[5] != iface {
				continue
			}
			var flags int
			fmt.Sscanf(f[4], "%x", &flags)
			a, err := netip.ParseAddr(hexIPv6(f[0]))
			if err == nil && a.IsLinkLocalUnicast() && flags&0x40 == 0 {
				return a
			}
		}
	}
	return netip.Addr{}
}

func hexIPv6(h string) string {
	if len(h) != 32 {
		return ""
	}
	var parts []string
	for i := 0; i < 32; i += 4 {
		parts = append(parts, h[i:i+4])
	}
	return strings.Join(parts, ":")
}

// eui64 is the link-local address the kernel derives from mac.
func eui64(mac net.HardwareAddr) netip.Addr {
	a := [16]byte{0: 0xfe, 1: 0x80}
	if len(mac) == 6 {
		a[8], a[9], a[10], a[11], a[12] = mac[0]^2, mac[1], mac[2], 0xff, 0xfe
		a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(a)
}

// neighbours6 pings all nodes of the link and returns who answered but
// the guest itself.
func neighbours6(ifc *net.Interface, wait time.Duration) []netip.Addr {
	self := map[netip.Addr]bool{eui64(ifc.HardwareAddr): true}
	if as, err := ifc.Addrs(); err == nil {
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				self[p.Addr()] = true
			}
		}
	}
	c, err := net.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		say("neigh6", "listen", ifc.Name, "error:"+word(err))
		return nil
	}
	defer c.Close()
	echo := []byte{128, 0, 0, 0, 0x68, 0x70, 0, 1, 'h', 'o', 's', 't', 'i', 'l', 'e'}
	if _, err := c.WriteTo(echo, &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: ifc.Name}); err != nil {
		say("neigh6", "ping", "ff02::1", "error:"+word(err))
		return nil
	}
	seen := map[netip.Addr]bool{}
	var found []netip.Addr
	deadline := time.Now().Add(wait)
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		c.SetReadDeadline(deadline)
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			break
		}
		ia, ok := from.(*net.IPAddr)
		if !ok || n < 8 || buf[0] != 129 || buf[4] != 0x68 || buf[5] != 0x70 {
			continue
		}
		a, ok := netip.AddrFromSlice(ia.IP)
		if !ok || self[a.WithZone("")] || seen[a] {
			continue
		}
		seen[a] = true
		found = append(found, a)
	}
	return found
}
