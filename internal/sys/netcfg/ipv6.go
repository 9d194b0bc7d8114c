package netcfg

import (
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// in6Ifreq is struct in6_ifreq of <linux/ipv6.h>.
type in6Ifreq struct {
	addr      [16]byte
	prefixlen uint32
	ifindex   int32
}

// in6Rtmsg is struct in6_rtmsg of <linux/ipv6_route.h> on 64-bit Linux.
type in6Rtmsg struct {
	dst     [16]byte // rtmsg_dst
	_       [16]byte // rtmsg_src
	gateway [16]byte
	_       uint32 // rtmsg_type
	dstLen  uint16 // rtmsg_dst_len
	_       uint16 // rtmsg_src_len
	metric  uint32
	info    uint64
	flags   uint32
	ifindex int32
}

func socket6() (int, error) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening an IPv6 control socket: %w", err)
	}
	return fd, nil
}

// ioctl6 runs the IPv6 ioctl req on link name, with the argument that arg
// builds from the link's index; an existing address or route is fine.
func ioctl6[T any](name string, req uint, arg func(ifindex int32) *T) error {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return fmt.Errorf("finding %s: %w", name, err)
	}
	fd, err := socket6()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(arg(int32(ifc.Index)))))
	if errno != 0 && errno != unix.EEXIST {
		return errno
	}
	return nil
}

// AddAddr6 adds IPv6 address p to link name (an existing one is fine).
func AddAddr6(name string, p netip.Prefix) error {
	if !p.Addr().Is6() || p.Addr().Is4In6() {
		return fmt.Errorf("address %s is not IPv6", p)
	}
	err := ioctl6(name, unix.SIOCSIFADDR, func(ifindex int32) *in6Ifreq {
		return &in6Ifreq{addr: p.Addr().As16(), prefixlen: uint32(p.Bits()), ifindex: ifindex}
	})
	if err != nil {
		return fmt.Errorf("adding %s to %s: %w", p, name, err)
	}
	return nil
}

// AddDefaultRoute6 adds "default via gw dev name" for IPv6 (gw may be
// link-local: it is on name). An existing identical route is fine.
func AddDefaultRoute6(name string, gw netip.Addr) error {
	return AddRoute6(name, netip.PrefixFrom(netip.IPv6Unspecified(), 0), gw)
}

// AddRoute6 adds "dst via gw dev name" for IPv6 (gw may be link-local: it
// is on name). An existing identical route is fine.
func AddRoute6(name string, dst netip.Prefix, gw netip.Addr) error {
	if !gw.Is6() || gw.Is4In6() {
		return fmt.Errorf("gateway %s is not IPv6", gw)
	}
	if !dst.Addr().Is6() || dst.Addr().Is4In6() {
		return fmt.Errorf("destination %s is not IPv6", dst)
	}
	dst = dst.Masked()
	err := ioctl6(name, unix.SIOCADDRT, func(ifindex int32) *in6Rtmsg {
		return &in6Rtmsg{dst: dst.Addr().As16(), dstLen: uint16(dst.Bits()), gateway: gw.As16(), metric: 1024, flags: unix.RTF_UP | unix.RTF_GATEWAY, ifindex: ifindex}
	})
	if err != nil {
		return fmt.Errorf("adding route %s via %s dev %s: %w", dst, gw, name, err)
	}
	return nil
}
