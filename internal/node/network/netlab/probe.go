package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
)

// Probes: what a hostile tenant does from its side of a link (a namespace
// standing for its VM), and what the node side listens with. Every
// function takes the namespace explicitly; sockets are made inside it.

// NewNS makes namespace zl<id>-<name> with lo up, removed in t.Cleanup.
// Links made in it later start with IPv6 on and no duplicate address
// detection, so that a link-local source is usable at once (an attacker
// does not wait).
func (l *Lab) NewNS(t testing.TB, name string) string {
	t.Helper()
	ns := "zl" + l.ID + "-" + name
	must(t, netns.Create(ns))
	t.Cleanup(func() {
		if err := netns.Delete(ns); err != nil {
			t.Errorf("removing %s: %v", ns, err)
		}
	})
	must(t, rtnl.SetUp(ns, "lo"))
	must(t, netns.Sysctl(ns, "net/ipv6/conf/default/accept_dad", "0"))
	return ns
}

// DialTCP connects from ns to addr (host:port; an IPv6 link-local host
// carries its zone, "[fe80::1%eth0]:80") within timeout and closes the
// connection: nil means the connection was accepted.
func DialTCP(ns, addr string, timeout time.Duration) error {
	return netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// ListenTCP listens on addr in ns and accepts (and closes) connections
// until t ends; the address of every client is sent on the returned
// channel (dropped when nobody reads).
func ListenTCP(t testing.TB, ns, addr string) (net.Listener, <-chan netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	must(t, netns.Do(ns, func() (err error) { ln, err = net.Listen("tcp", addr); return err }))
	t.Cleanup(func() { ln.Close() })
	from := make(chan netip.AddrPort, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
				select {
				case from <- netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()):
				default:
				}
			}
			c.Close()
		}
	}()
	return ln, from
}

// ListenUDP listens on addr in ns; every datagram's payload is sent on the
// returned channel (dropped when nobody reads) until t ends.
func ListenUDP(t testing.TB, ns, addr string) (net.PacketConn, <-chan string) {
	t.Helper()
	var pc net.PacketConn
	must(t, netns.Do(ns, func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }))
	t.Cleanup(func() { pc.Close() })
	got := make(chan string, 16)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case got <- string(buf[:n]):
			default:
			}
		}
	}()
	return pc, got
}

// SendUDP sends payload from ns to addr.
func SendUDP(ns, addr, payload string) error {
	return netns.Do(ns, func() error {
		c, err := net.Dial("udp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte(payload))
		return err
	})
}

// icmp6 opens a raw ICMPv6 socket in the calling thread's namespace with
// hop limit 255 (what neighbour discovery requires) on link, and returns
// it with the link's index.
func icmp6(link string) (int, int, error) {
	ifc, err := net.InterfaceByName(link)
	if err != nil {
		return -1, 0, err
	}
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
	if err != nil {
		return -1, 0, fmt.Errorf("opening a raw ICMPv6 socket: %w", err)
	}
	for _, o := range []int{unix.IPV6_MULTICAST_HOPS, unix.IPV6_UNICAST_HOPS} {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, o, 255); err != nil {
			unix.Close(fd)
			return -1, 0, err
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifc.Index); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	if err := unix.BindToDevice(fd, link); err != nil {
		unix.Close(fd)
		return -1, 0, err
	}
	return fd, ifc.Index, nil
}

var allNodes = [16]byte{0xff, 0x02, 15: 1}

// RouterAdvertisement is an ICMPv6 router advertisement (RFC 4861 4.2)
// announcing its sender as a default router for lifetime seconds and
// prefix (a /64) as on-link and for address autoconfiguration. The kernel
// fills the checksum.
func RouterAdvertisement(prefix netip.Prefix, lifetime uint16) []byte {
	b := []byte{134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[6:], lifetime)
	opt := make([]byte, 32)
	opt[0], opt[1] = 3, 4 // prefix information, 4 x 8 bytes
	opt[2] = byte(prefix.Bits())
	opt[3] = 0xc0 // on-link, autonomous
	binary.BigEndian.PutUint32(opt[4:], 86400)
	binary.BigEndian.PutUint32(opt[8:], 14400)
	a := prefix.Masked().Addr().As16()
	copy(opt[16:], a[:])
	return append(b, opt...)
}

// SendRA sends, from link in ns, a router advertisement for prefix (see
// RouterAdvertisement) to all nodes of the link (ff02::1), from the link's
// link-local address with hop limit 255: what a router (or a tenant
// pretending to be one) sends.
func SendRA(ns, link string, prefix netip.Prefix) error {
	return netns.Do(ns, func() error {
		fd, idx, err := icmp6(link)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet6{Addr: allNodes, ZoneId: uint32(idx)}
		if err := unix.Sendto(fd, RouterAdvertisement(prefix, 1800), 0, to); err != nil {
			return fmt.Errorf("sending a router advertisement on %s: %w", link, err)
		}
		return nil
	})
}

// Neighbors6 pings all nodes of link (ff02::1) from ns and returns the
// link-local addresses that answered within wait: how a VM finds the
// node's addresses on its link.
func Neighbors6(ns, link string, wait time.Duration) ([]netip.Addr, error) {
	var out []netip.Addr
	err := netns.Do(ns, func() error {
		fd, idx, err := icmp6(link)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		own := map[netip.Addr]bool{}
		if ifc, err := net.InterfaceByName(link); err == nil {
			as, _ := ifc.Addrs()
			for _, a := range as {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					own[p.Addr()] = true
				}
			}
		}
		echo := []byte{128, 0, 0, 0, 0x7a, 0x6c, 0, 1, 'p', 'r', 'o', 'b', 'e'}
		if err := unix.Sendto(fd, echo, 0, &unix.SockaddrInet6{Addr: allNodes, ZoneId: uint32(idx)}); err != nil {
			return fmt.Errorf("pinging ff02::1 on %s: %w", link, err)
		}
		deadline := time.Now().Add(wait)
		seen := map[netip.Addr]bool{}
		buf := make([]byte, 1500)
		for {
			left := time.Until(deadline)
			if left <= 0 {
				return nil
			}
			tv := unix.NsecToTimeval(left.Nanoseconds())
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return err
			}
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				return fmt.Errorf("reading answers on %s: %w", link, err)
			}
			sa, ok := from.(*unix.SockaddrInet6)
			if !ok || n < 8 || buf[0] != 129 || buf[4] != 0x7a || buf[5] != 0x6c {
				continue
			}
			a := netip.AddrFrom16(sa.Addr)
			if !seen[a] && !own[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	})
	return out, err
}

// LinkLocal is the EUI-64 link-local address a link with mac gets when
// IPv6 is on (the kernel's default address generation).
func LinkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	if len(mac) == 6 {
		a[8] = mac[0] ^ 0x02
		a[9], a[10] = mac[1], mac[2]
		a[11], a[12] = 0xff, 0xfe
		a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	}
	return netip.AddrFrom16(a)
}
