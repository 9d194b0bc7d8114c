package network

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/sys/nft"
)

// Config of the network manager.
type Config struct {
	// Prefix is the node's prefix for kernel objects.
	Prefix string
	// NodeNS is the namespace that stands for the node's root namespace:
	// it holds the bridges, the WireGuard sockets and the resources'
	// public links. "" is the process's namespace.
	NodeNS string
	// Uplink says NodeNS belongs to the node and leads to its uplink: the
	// manager enables forwarding and NAT there and gives every resource a
	// public link. Without it (a node sharing the host's namespace),
	// resources only reach each other over WireGuard: the host's
	// forwarding is never touched, and its firewall only gets the node's
	// input filter, which concerns the node's tenant links alone.
	Uplink bool
	// TenantPorts are the TCP ports of NodeNS that tenants (VMs and
	// network resources) may connect to: the services meant for them,
	// such as the 0-db port and the gateway's front. Every other new
	// connection from a tenant link to the node is dropped.
	TenantPorts []uint16
	// ReservedPorts are the node's own ports (0-db, the gateway's front,
	// whatever else it listens on): no network may take one as its
	// WireGuard port, nor one below MinListenPort.
	ReservedPorts []uint16
	// Static6 and Gateway6 are the node's IPv6 address (a /64) and router
	// from the farm's public config (ipv6, gw6), for a LAN without router
	// advertisements; zero: SLAAC on the uplink (see ipv6.go).
	Static6  netip.Prefix
	Gateway6 netip.Addr
}

// Manager provisions `network` workloads (network resources).
type Manager struct {
	cfg Config
	sys System
	log *slog.Logger

	mu      sync.Mutex           // guards res and proxied
	res     map[string]*resource // by network id
	proxied map[string]proxy6    // public IPv6 of VMs, by tap
}

type resource struct {
	r   Resource
	dev Device
	wl  gridtypes.WorkloadID
}

var (
	_ provision.Manager = (*Manager)(nil)
	_ provision.Updater = (*Manager)(nil)
)

// NewManager returns a manager applying its resources through sys (see
// HostSystem); Start prepares the node namespace.
func NewManager(cfg Config, sys System, log *slog.Logger) *Manager {
	return &Manager{cfg: cfg, sys: sys, log: log, res: map[string]*resource{}, proxied: map[string]proxy6{}}
}

// Start removes what an earlier run that did not stop cleanly left (the
// engine provisions live resources again), installs the filter of what
// tenants send to the node, then (with an uplink) enables forwarding and
// NAT in the node namespace, the farm's router being the gateway of its
// default route then.
func (m *Manager) Start() error {
	if err := m.sys.validate(); err != nil {
		return err
	}
	if err := m.removeLeftovers(); err != nil {
		return err
	}
	if err := m.sys.Firewall.Apply(m.cfg.NodeNS, InputRuleset(m.inputTable(), m.cfg.TenantPorts)); err != nil {
		return fmt.Errorf("installing the node's input filter: %w", err)
	}
	if !m.cfg.Uplink {
		return nil
	}
	uplink, router, err := m.sys.Routes.Default(m.cfg.NodeNS)
	if err != nil {
		return err
	}
	if err := m.sys.Sysctls.Set(m.cfg.NodeNS, "net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if err := m.startIPv6(uplink); err != nil {
		return fmt.Errorf("setting up IPv6 on the uplink: %w", err)
	}
	return m.sys.Firewall.Apply(m.cfg.NodeNS, NodeRuleset(router))
}

// inputTable is the name of the node's input filter table: several nodes
// may share the host's namespace, each with its prefix.
func (m *Manager) inputTable() string {
	if m.cfg.Prefix == "" {
		return "zos-in"
	}
	h := sha256.Sum256([]byte(m.cfg.Prefix))
	return fmt.Sprintf("zos-in-%x", h[:4])
}

// Close stops every WireGuard device and removes every resource's kernel
// objects (they are rebuilt from the store at the next start), then the
// node namespace's rules.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for id, r := range m.res {
		errs = append(errs, m.teardown(r.r.Names, r.dev))
		delete(m.res, id)
	}
	for tap := range m.proxied {
		errs = append(errs, m.unproxy(tap))
	}
	if m.cfg.Uplink {
		errs = append(errs, m.sys.Firewall.Apply(m.cfg.NodeNS, nft.Drop("inet", "zos-nr")))
	}
	errs = append(errs, m.sys.Firewall.Apply(m.cfg.NodeNS, nft.Drop("inet", m.inputTable())))
	return errors.Join(errs...)
}

func netIDOf(wl *provision.Workload) string {
	return gridtypes.NetID(wl.Deployment.TwinID, wl.Name)
}

// Provision creates the network resource, or returns at once if it runs.
func (m *Manager) Provision(ctx context.Context, wl *provision.Workload) (any, error) {
	return nil, m.ensure(wl, false)
}

// Update applies a new configuration: peers in place when only they
// changed, otherwise the resource is made again.
func (m *Manager) Update(ctx context.Context, wl *provision.Workload) (any, error) {
	return nil, m.ensure(wl, true)
}

// ensure creates the resource of wl when it does not run; when it runs,
// update says whether it takes wl's configuration.
func (m *Manager) ensure(wl *provision.Workload, update bool) error {
	n, err := provision.Data[*gridtypes.Network](wl)
	if err != nil {
		return err
	}
	id := netIDOf(wl)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.res[id]
	switch {
	case !ok:
		return m.create(id, wl.ID, n)
	case !update:
		return nil
	}
	if err := m.checkPort(id, n.WGListenPort); err != nil {
		return provision.Unchanged(err)
	}
	next, err := Plan(m.cfg.Prefix, id, n, cur.r.Public)
	if err != nil {
		return provision.Unchanged(err)
	}
	if next.Range == cur.r.Range && next.Gateway == cur.r.Gateway && next.PrivateKey == cur.r.PrivateKey && next.ListenPort == cur.r.ListenPort {
		if err := cur.dev.Configure(next.PrivateKey, next.ListenPort, next.Peers); err != nil {
			return err
		}
		keep := map[Route]bool{}
		for _, rt := range next.Routes {
			keep[rt] = true
			if err := m.sys.Routes.Add(next.Names.NS, rt); err != nil {
				return err
			}
		}
		for _, rt := range cur.r.Routes {
			if !keep[rt] {
				if err := m.sys.Routes.Delete(cur.r.Names.NS, rt); err != nil {
					return err
				}
			}
		}
		cur.r = next
		return nil
	}
	if err := m.teardown(cur.r.Names, cur.dev); err != nil {
		return err
	}
	delete(m.res, id)
	return m.create(id, wl.ID, n)
}

// Deprovision removes the resource: device, namespace, links, socket.
func (m *Manager) Deprovision(ctx context.Context, wl *provision.Workload) error {
	id := netIDOf(wl)
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.res[id]
	if !ok {
		return m.teardown(NamesOf(m.cfg.Prefix, id), nil)
	}
	delete(m.res, id)
	return m.teardown(cur.r.Names, cur.dev)
}

// checkPort refuses a port of the node itself or one another resource
// of this node listens on (Plan refuses those below MinListenPort).
// Caller holds mu.
func (m *Manager) checkPort(id string, port uint16) error {
	for _, p := range m.cfg.ReservedPorts {
		if p == port {
			return fmt.Errorf("wireguard_listen_port: %d is used by the node itself", port)
		}
	}
	for other, r := range m.res {
		if other != id && r.r.ListenPort == port {
			return fmt.Errorf("wireguard_listen_port: %d is taken by another network on this node", port)
		}
	}
	return nil
}

// allocPublic picks the resource's address in PublicRange: a hash of its
// id, probing past addresses in use. Caller holds mu.
func (m *Manager) allocPublic(id string) (netip.Addr, error) {
	used := map[netip.Addr]bool{}
	for _, r := range m.res {
		used[r.r.Public] = true
	}
	h := sha256.Sum256([]byte(m.cfg.Prefix + ":" + id))
	const size = 255 * 253 // 100.127.1.2 .. 100.127.255.254
	start := int(binary.BigEndian.Uint32(h[:4]) % size)
	for i := range size {
		v := (start + i) % size
		a := netip.AddrFrom4([4]byte{100, 127, byte(1 + v/253), byte(2 + v%253)})
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("no free address left in 100.127.0.0/16")
}

// create makes resource id from scratch, removing leftovers of an earlier
// run first; on error nothing is left behind. Caller holds mu.
func (m *Manager) create(id string, wlid gridtypes.WorkloadID, n *gridtypes.Network) error {
	if err := m.checkPort(id, n.WGListenPort); err != nil {
		return err
	}
	var public netip.Addr
	if m.cfg.Uplink {
		var err error
		if public, err = m.allocPublic(id); err != nil {
			return err
		}
	}
	r, err := Plan(m.cfg.Prefix, id, n, public)
	if err != nil {
		return err
	}
	if err := m.teardown(r.Names, nil); err != nil {
		return fmt.Errorf("removing leftovers of network %s: %w", id, err)
	}
	dev, err := m.apply(r)
	if err != nil {
		if terr := m.teardown(r.Names, dev); terr != nil {
			m.log.Error("network_cleanup_failed", "net_id", id, "err", terr)
		}
		return fmt.Errorf("creating network resource %s: %w", id, err)
	}
	m.res[id] = &resource{r: r, dev: dev, wl: wlid}
	m.log.Info("network_created", "net_id", id, "workload", wlid, "subnet", r.Gateway.Masked(), "port", r.ListenPort)
	return nil
}

// apply makes the kernel objects of r, in order. The device is returned
// even on error so that the caller can close it.
func (m *Manager) apply(r Resource) (Device, error) {
	nn, node := r.Names, m.cfg.NodeNS
	steps := []func() error{
		func() error { return m.sys.NS.Create(nn.NS) },
		// No IPv6 in the resource: its links face the tenant's VMs.
		func() error { return m.sys.Sysctls.DisableIPv6(nn.NS, "default") },
		func() error { return m.sys.Sysctls.DisableIPv6(nn.NS, "all") },
		func() error { return m.sys.Ifaces.Up(nn.NS, "lo") },
		func() error { return m.sys.Sysctls.Set(nn.NS, "net/ipv4/ip_forward", "1") },
		func() error { return m.sys.Firewall.Apply(nn.NS, r.Ruleset) },
		func() error { return m.sys.Links.AddBridge(node, nn.Bridge) },
		// The node has no address on the bridge: it answers no ARP there,
		// so a tenant learns none of the node's addresses and plants no
		// neighbour entries in it (TestHostileTenant).
		func() error { return m.sys.Sysctls.Set(node, "net/ipv4/conf/"+nn.Bridge+"/arp_ignore", "8") },
		func() error { return m.sys.Links.AddVeth(node, nn.BridgeVeth, nn.Bridge, nn.NS, nn.NRVeth) },
		func() error { return m.sys.Ifaces.AddAddr(nn.NS, nn.NRVeth, r.Gateway) },
	}
	if r.Public.IsValid() {
		steps = append(steps,
			func() error { return m.sys.Links.AddVeth(node, nn.PublicVeth, "", nn.NS, PublicIface) },
			func() error { return m.sys.Ifaces.AddAddr(node, nn.PublicVeth, netip.PrefixFrom(PublicGateway, 32)) },
			func() error {
				return m.sys.Routes.Add(node, Route{Dst: netip.PrefixFrom(r.Public, 32), Dev: nn.PublicVeth})
			},
			func() error { return m.sys.Ifaces.AddAddr(nn.NS, PublicIface, netip.PrefixFrom(r.Public, 32)) },
		)
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	dev, err := m.sys.WireGuard.Start(nn.WG, nn.NS, node)
	if err != nil {
		return nil, err
	}
	if err := dev.Configure(r.PrivateKey, r.ListenPort, r.Peers); err != nil {
		return dev, err
	}
	if err := m.sys.Ifaces.AddAddr(nn.NS, nn.WG, r.WGAddr); err != nil {
		return dev, err
	}
	if err := m.sys.Ifaces.Up(nn.NS, nn.WG); err != nil {
		return dev, err
	}
	for _, rt := range r.Routes {
		if err := m.sys.Routes.Add(nn.NS, rt); err != nil {
			return dev, err
		}
	}
	return dev, nil
}

// teardown removes whatever exists of a resource; dev may be nil.
func (m *Manager) teardown(nn Names, dev Device) error {
	var errs []error
	if dev != nil {
		errs = append(errs, dev.Close())
	}
	node := m.cfg.NodeNS
	// Node-side veth ends first: their peers go with them at once, while
	// the namespace's links go when the kernel frees it.
	errs = append(errs,
		m.sys.Links.Delete(node, nn.BridgeVeth),
		m.sys.Links.Delete(node, nn.PublicVeth),
		m.sys.Links.Delete(node, nn.Bridge),
		m.sys.NS.Delete(nn.NS),
	)
	return errors.Join(errs...)
}

// WGPorts returns the WireGuard ports taken on this node, sorted: those
// of its networks and its own reserved ports (from MinListenPort up).
func (m *Manager) WGPorts() []uint16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	ports := []uint16{}
	for _, r := range m.res {
		ports = append(ports, r.r.ListenPort)
	}
	for _, p := range m.cfg.ReservedPorts {
		if p >= MinListenPort && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	return ports
}

// removeLeftovers deletes the resource namespaces of this node's prefix
// and, in a node namespace of its own (never the host's), the resources'
// links there.
func (m *Manager) removeLeftovers() error {
	nss, err := m.sys.NS.List(m.cfg.Prefix + "n-")
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		m.log.Info("network_leftover_removed", "netns", ns)
		errs = append(errs, m.sys.NS.Delete(ns))
	}
	if m.cfg.Uplink && m.cfg.NodeNS != "" {
		for _, p := range []string{"l-", "u-", "b-"} {
			links, err := m.sys.Ifaces.List(m.cfg.NodeNS, p)
			if err != nil {
				return err
			}
			for _, l := range links {
				errs = append(errs, m.sys.Links.Delete(m.cfg.NodeNS, l))
			}
		}
	}
	return errors.Join(errs...)
}

// Dialer returns a dial function that connects from inside the twin's
// network resource named name (for gateways with private backends).
func (m *Manager) Dialer(twin uint32, name string) (func(ctx context.Context, network, addr string) (net.Conn, error), error) {
	id := gridtypes.NetID(twin, name)
	m.mu.Lock()
	r, ok := m.res[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("network %q has no resource on this node", name)
	}
	ns := r.r.Names.NS
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return m.sys.NS.Dial(ctx, ns, network, addr)
	}, nil
}

// Attachment is where a VM's interface on a network resource plugs in.
type Attachment struct {
	// NS holds the bridge and the VM's tap: the node namespace ("" is
	// the process's).
	NS     string
	Bridge string
	// Gateway is the resource's address on its subnet (x.y.z.1/24): the
	// VM's default route; its masked prefix is the VM's subnet.
	Gateway netip.Prefix
	// ResourceNS is the resource's namespace (reaches every VM on it).
	ResourceNS string
	// Range is the user's whole network (/16), reached through Gateway.
	Range netip.Prefix
}

// Attach makes tap a port of the bridge of the twin's network resource
// named name and returns where it is. It is idempotent: after a node
// restart the bridge is new and the VM's tap joins it again.
func (m *Manager) Attach(twin uint32, name, tap string) (Attachment, error) {
	id := gridtypes.NetID(twin, name)
	m.mu.Lock()
	r, ok := m.res[id]
	m.mu.Unlock()
	if !ok {
		return Attachment{}, fmt.Errorf("network %q has no resource on this node (deploy the network workload first)", name)
	}
	if !IsTenantLink(tap) {
		return Attachment{}, fmt.Errorf("tap %q: a VM's tap must be named as a tenant link (%v) for the node's firewall", tap, TenantLinks)
	}
	a := Attachment{NS: m.cfg.NodeNS, Bridge: r.r.Names.Bridge, Gateway: r.r.Gateway, ResourceNS: r.r.Names.NS, Range: r.r.Range}
	if err := m.sys.Links.AddTap(m.cfg.NodeNS, tap, a.Bridge); err != nil {
		return Attachment{}, err
	}
	return a, nil
}

// Detach removes a VM's tap, and the proxy of its public IPv6 if any.
func (m *Manager) Detach(tap string) error {
	m.mu.Lock()
	err := m.unproxy(tap)
	m.mu.Unlock()
	return errors.Join(err, m.sys.Links.Delete(m.cfg.NodeNS, tap))
}

// AttachPublic makes tap the public link of a VM with addresses ips (an
// IPv4, an IPv6, or both): a routed tap in the node namespace (no
// bridge): each address is routed to it; proxy ARP on the tap and the
// uplink, for IPv6 an NDP proxy entry on the uplink and the node's
// link-local fe80::1 on the tap (the VM's IPv6 router), let the VM use
// the farm's gateway and the farm's LAN reach the VM. It needs a node
// that owns its uplink.
func (m *Manager) AttachPublic(tap string, ips ...netip.Addr) error {
	if !m.cfg.Uplink {
		return errors.New("this node has no public uplink of its own (hosted in the host's namespace): VMs cannot get public IPs here")
	}
	if !IsTenantLink(tap) {
		return fmt.Errorf("tap %q: a VM's tap must be named as a tenant link (%v) for the node's firewall", tap, TenantLinks)
	}
	if len(ips) == 0 {
		return fmt.Errorf("tap %q: no public address to attach", tap)
	}
	uplink, _, err := m.sys.Routes.Default(m.cfg.NodeNS)
	if err != nil {
		return err
	}
	if uplink == "" {
		return errors.New("the node namespace has no default route: no uplink for public IPs")
	}
	if err := m.sys.Links.AddTap(m.cfg.NodeNS, tap, ""); err != nil {
		return err
	}
	for _, ip := range ips {
		if ip.Is6() {
			if err := m.attachPublic6(tap, uplink, ip); err != nil {
				return err
			}
			continue
		}
		for _, dev := range []string{tap, uplink} {
			if err := m.sys.Sysctls.Set(m.cfg.NodeNS, "net/ipv4/conf/"+dev+"/proxy_arp", "1"); err != nil {
				return err
			}
		}
		if err := m.sys.Routes.Add(m.cfg.NodeNS, Route{Dst: netip.PrefixFrom(ip, 32), Dev: tap}); err != nil {
			return err
		}
	}
	return nil
}
