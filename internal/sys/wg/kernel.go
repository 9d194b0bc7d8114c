package wg

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/zos-go/zos/internal/sys/netns"
)

// kernelDevice is a kernel WireGuard interface. It is created in the
// sockets' namespace and moved to the interface's: the kernel keeps its UDP
// sockets in the namespace it was created in.
type kernelDevice struct {
	name, ns string
}

// unsupported reports whether err from creating a "wireguard" link means
// the kernel has no WireGuard: no such link kind (EOPNOTSUPP, after the
// kernel's attempt to load the module), or no module support at all.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EAFNOSUPPORT)
}

// routeHandle is a routing netlink handle in namespace ns ("" for the
// caller's).
func routeHandle(ns string) (*netlink.Handle, error) {
	h, err := netns.Open(ns)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	nh, err := netlink.NewHandleAt(h, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in namespace %q: %w", ns, err)
	}
	return nh, nil
}

func startKernel(name, tunNS, sockNS string) (*kernelDevice, error) {
	h, err := routeHandle(sockNS)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = name, MTU
	if err := h.LinkAdd(&netlink.Wireguard{LinkAttrs: la}); err != nil {
		if unsupported(err) {
			return nil, fmt.Errorf("creating kernel wireguard %s: %w: %w", name, ErrKernelUnsupported, err)
		}
		return nil, fmt.Errorf("creating kernel wireguard %s in namespace %q: %w", name, sockNS, err)
	}
	d := &kernelDevice{name: name, ns: sockNS}
	if tunNS == sockNS {
		return d, nil
	}
	l, err := h.LinkByName(name)
	if err == nil {
		target, oerr := netns.Open(tunNS)
		err = oerr
		if err == nil {
			err = h.LinkSetNsFd(l, int(target))
			target.Close()
		}
	}
	if err != nil {
		_ = h.LinkDel(&netlink.Wireguard{LinkAttrs: la})
		return nil, fmt.Errorf("moving kernel wireguard %s to namespace %q: %w", name, tunNS, err)
	}
	d.ns = tunNS
	return d, nil
}

// kernelConfig is c as wgctrl's configuration.
func kernelConfig(c Config) wgtypes.Config {
	key := wgtypes.Key(c.PrivateKey)
	port := int(c.ListenPort)
	kc := wgtypes.Config{PrivateKey: &key, ListenPort: &port, ReplacePeers: true}
	for _, p := range c.Peers {
		pc := wgtypes.PeerConfig{PublicKey: wgtypes.Key(p.PublicKey), ReplaceAllowedIPs: true}
		if p.Endpoint.IsValid() {
			pc.Endpoint = net.UDPAddrFromAddrPort(p.Endpoint)
		}
		if p.Keepalive > 0 {
			k := time.Duration(p.Keepalive) * time.Second
			pc.PersistentKeepaliveInterval = &k
		}
		for _, a := range p.AllowedIPs {
			a = a.Masked()
			pc.AllowedIPs = append(pc.AllowedIPs, net.IPNet{IP: a.Addr().AsSlice(), Mask: net.CIDRMask(a.Bits(), a.Addr().BitLen())})
		}
		kc.Peers = append(kc.Peers, pc)
	}
	return kc
}

func (d *kernelDevice) configure(c Config) error {
	return netns.Do(d.ns, func() error {
		cl, err := wgctrl.New()
		if err != nil {
			return fmt.Errorf("opening wireguard netlink: %w", err)
		}
		defer cl.Close()
		if err := cl.ConfigureDevice(d.name, kernelConfig(c)); err != nil {
			return fmt.Errorf("configuring %s (listen port %d): %w", d.name, c.ListenPort, err)
		}
		return nil
	})
}

func (d *kernelDevice) close() error {
	if d.ns != "" && !netns.Exists(d.ns) {
		return nil // the namespace went, and the interface with it
	}
	h, err := routeHandle(d.ns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(d.name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("finding %s in namespace %q: %w", d.name, d.ns, err)
	}
	if err := h.LinkDel(l); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting %s in namespace %q: %w", d.name, d.ns, err)
	}
	return nil
}
