package network

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/rtnl"
	"github.com/zos-go/zos/internal/sys/wg"
)

// SysKernel is the Kernel of a real host: netlink, named namespaces and
// the nft binary.
type SysKernel struct{}

var _ Kernel = SysKernel{}

// CreateNS implements Kernel.
func (SysKernel) CreateNS(name string) error { return netns.Create(name) }

// DeleteNS implements Kernel.
func (SysKernel) DeleteNS(name string) error { return netns.Delete(name) }

// AddBridge implements Kernel: the bridge has no IPv6.
func (SysKernel) AddBridge(ns, name string) error { return rtnl.AddBridge(ns, name, rtnl.NoIPv6()) }

// AddVeth implements Kernel: the end in ns has no IPv6.
func (SysKernel) AddVeth(ns, name, master, peerNS, peer string) error {
	return rtnl.AddVeth(ns, name, master, peerNS, peer, rtnl.NoIPv6())
}

// DefaultRoute implements Kernel.
func (SysKernel) DefaultRoute(ns string) (string, netip.Addr, error) { return rtnl.DefaultRoute(ns) }

// AddTap implements Kernel: the tap has no IPv6.
func (SysKernel) AddTap(ns, name, master string) error {
	return rtnl.AddTap(ns, name, master, rtnl.NoIPv6())
}

// DisableIPv6 implements Kernel.
func (SysKernel) DisableIPv6(ns, link string) error { return rtnl.DisableIPv6(ns, link) }

// AddAddr implements Kernel.
func (SysKernel) AddAddr(ns, link string, p netip.Prefix) error { return rtnl.AddAddr(ns, link, p) }

// SetUp implements Kernel.
func (SysKernel) SetUp(ns, link string) error { return rtnl.SetUp(ns, link) }

// AddRoute implements Kernel.
func (SysKernel) AddRoute(ns string, r Route) error {
	return rtnl.AddRoute(ns, rtnl.Route{Dst: r.Dst, Dev: r.Dev, Via: r.Via})
}

// DelRoute implements Kernel.
func (SysKernel) DelRoute(ns string, r Route) error {
	return rtnl.DelRoute(ns, rtnl.Route{Dst: r.Dst, Dev: r.Dev, Via: r.Via})
}

// DeleteLink implements Kernel.
func (SysKernel) DeleteLink(ns, name string) error { return rtnl.DeleteLink(ns, name) }

// Nft implements Kernel: the ruleset is loaded atomically with `nft -f -`.
func (SysKernel) Nft(ns, ruleset string) error {
	if ns != "" && !netns.Exists(ns) {
		return fmt.Errorf("namespace %s does not exist", ns)
	}
	_, err := netns.Run(ns, ruleset, "nft", "-f", "-")
	return err
}

// DialIn implements Kernel: the socket is made inside ns.
func (SysKernel) DialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(ns, func() (err error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// ListNS implements Kernel.
func (SysKernel) ListNS(prefix string) ([]string, error) { return netns.List(prefix) }

// Links implements Kernel.
func (SysKernel) Links(ns, prefix string) ([]string, error) { return rtnl.Links(ns, prefix) }

// Sysctl implements Kernel.
func (SysKernel) Sysctl(ns, key, value string) error { return netns.Sysctl(ns, key, value) }

// SysWireGuard starts wireguard-go devices.
type SysWireGuard struct {
	Log *slog.Logger
}

var _ WireGuard = SysWireGuard{}

// Start implements WireGuard.
func (w SysWireGuard) Start(name, tunNS, sockNS string) (Device, error) {
	d, err := wg.Start(name, tunNS, sockNS, w.Log.With("wg", name))
	if err != nil {
		return nil, err
	}
	return wgDevice{d}, nil
}

type wgDevice struct{ d *wg.Device }

func (d wgDevice) Configure(key [32]byte, port uint16, peers []Peer) error {
	c := wg.Config{PrivateKey: key, ListenPort: port}
	for _, p := range peers {
		c.Peers = append(c.Peers, wg.Peer{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: p.AllowedIPs, Keepalive: p.Keepalive})
	}
	return d.d.Configure(c)
}

func (d wgDevice) Close() error { return d.d.Close() }
