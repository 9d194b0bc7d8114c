// Package netcfg configures IPv4 on a link with ioctls (what ifconfig and
// route do): bring a link up, set its address, add the default route, and
// list the physical NICs with their carrier. zos init uses it with the
// lease of internal/sys/dhcp; vminit also sets a public-IPv6 VM's address
// and IPv6 default route with it (ipv6.go).
package netcfg

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Link is a network interface seen in sysfs.
type Link struct {
	Name     string
	MAC      string
	Physical bool // backed by a device (not lo, bridges, veth, tun)
	Carrier  bool // cable plugged / link detected (only meaningful when up)
	Up       bool
}

// Links lists the interfaces in /sys/class/net, sorted by name.
func Links(sysClassNet string) ([]Link, error) {
	ents, err := os.ReadDir(sysClassNet)
	if err != nil {
		return nil, fmt.Errorf("listing links: %w", err)
	}
	var out []Link
	for _, e := range ents {
		dir := filepath.Join(sysClassNet, e.Name())
		l := Link{Name: e.Name(), MAC: readString(filepath.Join(dir, "address"))}
		_, err := os.Stat(filepath.Join(dir, "device"))
		l.Physical = err == nil
		l.Carrier = readString(filepath.Join(dir, "carrier")) == "1"
		l.Up = readString(filepath.Join(dir, "operstate")) == "up"
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readString(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func socket() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening a control socket: %w", err)
	}
	return fd, nil
}

// Up sets IFF_UP on a link.
func Up(name string) error {
	fd, err := socket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading flags of %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

// SetAddr sets the IPv4 address and netmask of a link (replacing the
// previous one).
func SetAddr(name string, ip net.IP, mask net.IPMask) error {
	ip4 := ip.To4()
	if ip4 == nil || len(mask) != 4 {
		return fmt.Errorf("address %s/%s is not IPv4", ip, mask)
	}
	fd, err := socket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, op := range []struct {
		req  uint
		addr []byte
		what string
	}{{unix.SIOCSIFADDR, ip4, "address"}, {unix.SIOCSIFNETMASK, mask, "netmask"}} {
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		if err := ifr.SetInet4Addr(op.addr); err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, op.req, ifr); err != nil {
			return fmt.Errorf("setting %s %s of %s: %w", op.what, net.IP(op.addr), name, err)
		}
	}
	return nil
}

// rtentry is struct rtentry of <net/route.h> on 64-bit Linux.
type rtentry struct {
	pad1    uint64
	dst     unix.RawSockaddrInet4
	gateway unix.RawSockaddrInet4
	genmask unix.RawSockaddrInet4
	flags   uint16
	pad2    int16
	pad3    uint64
	pad4    uintptr
	metric  int16
	dev     *byte
	mtu     uint64
	window  uint64
	irtt    uint16
}

// AddDefaultRoute adds "default via gw dev name". An existing identical
// route (EEXIST) is fine.
func AddDefaultRoute(name string, gw net.IP) error { return AddRoute(name, nil, gw) }

// AddRoute adds "dst via gw dev name" (dst nil: the default route). An
// existing identical route (EEXIST) is fine.
func AddRoute(name string, dst *net.IPNet, gw net.IP) error {
	gw4 := gw.To4()
	if gw4 == nil {
		return fmt.Errorf("gateway %s is not IPv4", gw)
	}
	fd, err := socket()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	dev, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	rt := rtentry{flags: unix.RTF_UP | unix.RTF_GATEWAY, dev: dev}
	rt.dst.Family, rt.gateway.Family, rt.genmask.Family = unix.AF_INET, unix.AF_INET, unix.AF_INET
	copy(rt.gateway.Addr[:], gw4)
	what := "default"
	if dst != nil {
		d4, m4 := dst.IP.To4(), net.IP(dst.Mask).To4()
		if d4 == nil || m4 == nil {
			return fmt.Errorf("route %s is not IPv4", dst)
		}
		copy(rt.dst.Addr[:], d4.Mask(dst.Mask))
		copy(rt.genmask.Addr[:], m4)
		what = dst.String()
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCADDRT, uintptr(unsafe.Pointer(&rt)))
	if errno != 0 && errno != unix.EEXIST {
		return fmt.Errorf("adding route %s via %s dev %s: %w", what, gw, name, errno)
	}
	return nil
}

// Addrs lists the IPv4 and IPv6 addresses of a link as strings.
func Addrs(name string) []string {
	ifc, err := net.InterfaceByName(name)
	if err != nil {
		return nil
	}
	as, err := ifc.Addrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
