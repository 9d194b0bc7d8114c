package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/billing"
	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/node/api"
	"github.com/zos-go/zos/internal/node/facts"
	"github.com/zos-go/zos/internal/node/gridsync"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/node/power"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/sys/netns"
	"github.com/zos-go/zos/internal/sys/sysinfo"
	"github.com/zos-go/zos/internal/version"
)

// startSystem reads the machine's capacity and sets the egress policy.
func (n *Node) startSystem(context.Context, *runner) error {
	n.egress = &egress.Policy{Allow: n.cfg.EgressAllow, Own: egress.InterfaceAddrs(30 * time.Second)}
	info, err := sysinfo.Read()
	if err != nil {
		return err
	}
	n.total = gridtypes.Capacity{CRU: uint64(info.CPUs), MRU: info.Memory}
	n.hyper = facts.Reader{Root: n.cfg.FactsRoot}.Hypervisor()
	n.log.Info("machine_facts", "virtualized", n.hyper.Virtualized, "hypervisor", n.hyper.Name, "evidence", n.hyper.Evidence)
	return nil
}

// startStorage brings up disks, pools and the cache: everything
// persistent lives there.
func (n *Node) startStorage(ctx context.Context, r *runner) error {
	st, err := storage.New(storage.Config{
		Root: filepath.Join(n.cfg.DataDir, "mnt"), DataDir: filepath.Join(n.cfg.DataDir, "disks"),
		Disks: n.cfg.Disks, ScanHost: n.cfg.ScanHost, Prefix: n.cfg.Prefix, RecreateMissing: n.cfg.RecreateMissingDisks,
	}, storage.HostSystem(), n.log.With("component", "storage"))
	if err != nil {
		return err
	}
	r.onStop("storage", func() error {
		// Last: unmount pools, detach loop devices. VMs outlive the node
		// process (a restart adopts them): their pools stay mounted.
		if n.vms != nil {
			if running := len(n.vms.vms.List()); running > 0 {
				n.log.Info("vms_left_running", "count", running)
				return nil
			}
		}
		return st.Close()
	})
	if err := st.Start(ctx); err != nil {
		return err
	}
	n.storage = st
	n.setStatus("storage", nil)
	cache, limited := st.Cache()
	if limited {
		n.log.Warn("limited_cache", "path", cache)
	}
	n.cache = cache
	return nil
}

// startIdentity loads the node key, on the cache, mirrored to every pool.
func (n *Node) startIdentity(context.Context, *runner) error {
	var poolDirs []string
	for _, p := range n.storage.Pools() {
		if p.Broken == "" {
			poolDirs = append(poolDirs, filepath.Join(n.cfg.DataDir, "mnt", p.Name))
		}
	}
	key, err := loadIdentity(identitySources{
		Cache: n.cache, Pools: poolDirs, Record: filepath.Join(n.cfg.DataDir, pubName),
		Existing: n.storage.Existing(), AllowNew: n.cfg.NewIdentity,
	}, n.log.With("component", "identity"))
	if err != nil {
		return err
	}
	n.key = key
	n.setStatus("identity", nil)
	return nil
}

// startGrid makes sure the node's key has a twin and connects with the
// twin's rights.
func (n *Node) startGrid(ctx context.Context, r *runner) error {
	nc, twin, err := n.connect(ctx, n.key)
	if err != nil {
		return err
	}
	r.onStop("grid", func() error { nc.Close(); return nil })
	n.nc, n.twin = nc, twin
	n.grid = registry.NewClient(nc, n.key, registry.WithClock(n.cfg.now()))
	// Billing: the grid's billing key is learned from the registry once
	// (then kept; a pinned --grid-key wins), and usage goes to it.
	if n.cfg.GridKeys == nil {
		n.cfg.GridKeys = gridKeys{n.grid}
	}
	if n.cfg.UsageReporter == nil {
		n.cfg.UsageReporter = n.grid
	}
	return nil
}

// gridKeys reads the grid's billing key from the registry's grid info.
type gridKeys struct{ c *registry.Client }

func (g gridKeys) GridKey(ctx context.Context) (ed25519.PublicKey, error) {
	info, err := g.c.GridInfo(ctx)
	if err != nil {
		return nil, err
	}
	return info.PublicBillingKey()
}

// startZDB listens for 0-db: one server for the stores of every HDD zdb
// device. Users get namespaces through deployments only: the admin
// commands (NSNEW, NSDEL, NSSET, STOP) are locked behind a random
// password.
func (n *Node) startZDB(_ context.Context, r *runner) error {
	admin := make([]byte, 32)
	if _, err := rand.Read(admin); err != nil {
		return fmt.Errorf("making the 0-db admin password: %w", err)
	}
	zsrv := zdb.NewServer(zdb.ServerConfig{Admin: hex.EncodeToString(admin), Protect: true}, n.log.With("component", "zdb"))
	ln, err := net.Listen("tcp", net.JoinHostPort(n.cfg.ListenIP, strconv.Itoa(n.cfg.ZDBPort)))
	if err != nil {
		return fmt.Errorf("listening for 0-db: %w", err)
	}
	r.onStop("zdb listener", ln.Close) // closed already when it served
	// A node owning its namespace (see startNetwork) also serves 0-db on
	// every IPv6 address there: its public IPv6 from SLAAC or the farm,
	// which may come after start.
	var ln6 net.Listener
	if ip := net.ParseIP(n.cfg.ListenIP); n.ownsUplink() && ip.To4() != nil {
		if ln6, err = listen6(n.cfg.NetNS, n.cfg.ZDBPort); err != nil {
			return fmt.Errorf("listening for 0-db over IPv6: %w", err)
		}
		r.onStop("zdb IPv6 listener", ln6.Close)
	}
	zdbm, err := primitives.NewZDBManager(primitives.ZDBConfig{Port: uint(n.cfg.ZDBPort)}, n.storage, zsrv, n.zdbIPs, n.log.With("component", "zdb"))
	if err != nil {
		return err
	}
	r.onStop("zdb", zdbm.Close)
	n.zdb = zdbm
	r.serve("zdb", func(ctx context.Context) error { return zsrv.Serve(ctx, ln) })
	if ln6 != nil {
		r.serve("zdb IPv6", func(ctx context.Context) error { return zsrv.Serve(ctx, ln6) })
	}
	return nil
}

// ownsUplink says the node runs in a namespace of its own (--netns) or
// owns the machine (a booted node, --scan-host): its forwarding, firewall
// and public addresses are its own.
func (n *Node) ownsUplink() bool { return n.cfg.NetNS != "" || n.cfg.ScanHost }

// listen6 listens on TCP port of every IPv6 address of namespace ns ("":
// the process's), IPv6 only (the IPv4 listener stays on ListenIP).
func listen6(ns string, port int) (net.Listener, error) {
	var ln net.Listener
	err := netns.Do(ns, func() (err error) {
		ln, err = net.Listen("tcp6", net.JoinHostPort("::", strconv.Itoa(port)))
		return err
	})
	return ln, err
}

// zdbIPs are the addresses 0-db namespaces are reached at: ListenIP, the
// node's public IPv6 when it has one, and its planetary address when the
// overlay runs in a namespace the node owns (0-db listens on every IPv6
// address there, see startZDB; the overlay's filter lets in the 0-db port).
func (n *Node) zdbIPs() []string {
	ips := []string{n.cfg.ListenIP}
	if n.network != nil {
		if a, err := n.network.Addr6(); err == nil {
			ips = append(ips, a.String())
		}
	}
	if ip, _ := n.PlanetaryIP(); ip.IsValid() && n.ownsUplink() {
		ips = append(ips, ip.String())
	}
	return ips
}

// startNetwork starts the network module: namespaces, bridges, WireGuard
// devices. Its closer stops the devices and removes the resources; they
// are rebuilt from the store. A node owns its namespace's forwarding and
// firewall when it runs in a namespace of its own (--netns) or owns the
// machine (a booted node, or --scan-host): resources are NATed there.
func (n *Node) startNetwork(_ context.Context, r *runner) error {
	netlog := n.log.With("component", "network")
	nm := network.NewManager(network.Config{Prefix: n.cfg.Prefix, NodeNS: n.cfg.NetNS, Uplink: n.ownsUplink(),
		TenantPorts: n.cfg.ownPorts(), ReservedPorts: n.cfg.ownPorts()},
		network.HostSystem(netlog), netlog)
	if err := nm.Start(); err != nil {
		return err
	}
	r.onStop("network", nm.Close)
	n.network = nm
	n.gw, n.gwm = n.gateway(n.cache, netlog)
	return nil
}

// startStore opens the provision store on the cache.
func (n *Node) startStore(_ context.Context, r *runner) error {
	store, err := provision.OpenStore(filepath.Join(n.cache, "provision.bolt"))
	if err != nil {
		return err
	}
	r.onStop("provision store", store.Close)
	n.store = store
	return nil
}

// startVMs prepares the VM module (nil without a guest kernel).
func (n *Node) startVMs(ctx context.Context, r *runner) error {
	vms, err := n.startMachines(ctx, n.cache, n.log)
	if err != nil {
		return err
	}
	n.vms = vms
	if vms != nil {
		n.serveLoop(r, "vms", func(ctx context.Context) error { return n.monitorVMs(ctx, vms.vms) })
	}
	return nil
}

// startEngine makes the provision engine with a manager per workload type.
func (n *Node) startEngine(_ context.Context, r *runner) error {
	netlog := n.log.With("component", "network")
	managers := map[gridtypes.WorkloadType]provision.Manager{
		gridtypes.ZMountType:   &primitives.ZMountManager{Storage: n.storage},
		gridtypes.VolumeType:   &primitives.VolumeManager{Storage: n.storage},
		gridtypes.ZDBType:      n.zdb,
		gridtypes.NetworkType:  n.network,
		gridtypes.PublicIPType: network.NewPublicIPManager(network.PublicIPConfig{NodeNS: n.cfg.NetNS}, network.HostSystem(netlog).Firewall, n.grid, n.network, netlog),
	}
	zlogs := primitives.NewZLogsManager(primitives.ZLogsConfig{Egress: n.egress}, n, n.network.Dialer, n.log.With("component", "zlogs"))
	r.onStop("zlogs", func() error { zlogs.Close(); return nil })
	managers[gridtypes.ZLogsType] = zlogs
	// qsfs: mounts served by this process; stopping flushes and unmounts
	// them (after the engine stopped), the next start mounts them again.
	qsfsm := primitives.NewQSFSManager(primitives.QSFSConfig{
		Root: filepath.Join(n.cfg.DataDir, "qsfs"), MetricsIP: n.cfg.ListenIP, Egress: n.egress,
		RepairEvery: n.cfg.QSFSRepairEvery,
	}, n.storage, n.log.With("component", "qsfs"))
	r.onStop("qsfs", qsfsm.Close)
	managers[gridtypes.QuantumSafeFSType] = qsfsm
	if n.vms != nil {
		n.vms.manager.QSFS = qsfsm
		managers[gridtypes.ZMachineType] = n.vms.manager
	}
	if n.gwm != nil {
		managers[gridtypes.GatewayNameProxyType] = n.gwm
		managers[gridtypes.GatewayFQDNProxyType] = n.gwm
	}
	n.engine = provision.NewEngine(n.metrics.engineConfig(provision.Config{Workers: n.cfg.Workers, OnJobDone: n.markUsed}), n.store,
		managers, n, n.log.With("component", "provision"))
	r.serve("provision", n.engine.Run)
	n.setStatus("provision", nil)
	return nil
}

// markUsed passes a job's contract to the used-capacity loop; jobs end
// only once the engine runs, after the grid sync task set it.
func (n *Node) markUsed(twin uint32, contract uint64) {
	if n.sync != nil {
		n.sync.MarkUsed(twin, contract)
	}
	if u := n.usage.Load(); u != nil {
		u.Changed()
	}
}

// startRegistration registers the node under its farm, retrying until it
// succeeds.
func (n *Node) startRegistration(ctx context.Context, _ *runner) error {
	if err := n.retry(ctx, "registration", func() error { return n.register(ctx) }); err != nil {
		return err
	}
	n.log.Info("node_registered", "node", n.ID(), "twin", n.twin, "farm", n.cfg.FarmID)
	if n.cfg.OnRegistered != nil {
		n.cfg.OnRegistered(n)
	}
	return nil
}

// startAPI serves the node API over the relay.
func (n *Node) startAPI(_ context.Context, r *runner) error {
	srv := rmb.NewServer(n.nc, n.twin, n.key, n.grid, n.log.With("component", "api"), rmb.WithClock(n.cfg.now()))
	api.New(n.ID(), n.grid, n.engine, n.engine.Store(), n).Register(srv)
	n.serveLoop(r, "api", srv.Serve)
	return nil
}

// startGateway listens for the gateway's TLS front, when a gateway.
func (n *Node) startGateway(_ context.Context, r *runner) error {
	if n.gw == nil {
		return nil
	}
	ln, err := gateway.Listen(n.cfg.NetNS, n.cfg.GatewayListen)
	if err != nil {
		return err
	}
	r.onStop("gateway listener", ln.Close) // closed already when it served
	r.serve("gateway", func(ctx context.Context) error { return n.gw.Serve(ctx, ln) })
	// On an IPv4 front, a node owning its namespace also listens on its
	// IPv6 addresses there (the same port).
	host, port, err := net.SplitHostPort(n.cfg.GatewayListen)
	if ip := net.ParseIP(host); err != nil || ip == nil || ip.To4() == nil || !n.ownsUplink() {
		return nil
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return fmt.Errorf("gateway listen port %q: %w", port, err)
	}
	ln6, err := listen6(n.cfg.NetNS, p)
	if err != nil {
		return fmt.Errorf("listening for the gateway over IPv6: %w", err)
	}
	r.onStop("gateway IPv6 listener", ln6.Close)
	r.serve("gateway IPv6", func(ctx context.Context) error { return n.gw.Serve(ctx, ln6) })
	return nil
}

// startGridSync runs the loops that keep the node in step with the
// registry: uptime, used capacity, contract events and resync.
func (n *Node) startGridSync(_ context.Context, r *runner) error {
	n.sync = gridsync.New(gridsync.Config{
		NodeID: n.ID(), UptimeEvery: n.cfg.UptimeEvery, ResyncEvery: n.cfg.ResyncEvery,
		SeqFile: filepath.Join(n.cache, "events.seq"),
		GridKey: n.cfg.GridKey, GridKeyFile: filepath.Join(n.cfg.DataDir, "grid-billing.key"), GridKeys: n.cfg.GridKeys,
		Power: gridsync.NewPower(n.ID(), n.grid, engineDeployments{n.engine}, powerHost{n}, n.log.With("component", "power")),
	}, n.grid, engineDeployments{n.engine}, gridHost{n}, n.log)
	// A hosted node in standby ends Run (ErrStandby).
	r.serve("standby", func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-n.standby:
			return ErrStandby
		}
	})
	n.serveLoop(r, "uptime", n.sync.UptimeLoop)
	n.serveLoop(r, "events", n.sync.EventsLoop)
	n.serveLoop(r, "resync", n.sync.ResyncLoop)
	n.serveLoop(r, "used", n.sync.UsedLoop)
	return nil
}

// startUpdate runs the self-update module, last: a trial is judged on a
// node that is fully up. Its switch ends the node (not restarted as a
// loop would be).
func (n *Node) startUpdate(_ context.Context, r *runner) error {
	if n.cfg.Update == nil {
		return nil
	}
	r.serve("update", func(ctx context.Context) error { return n.cfg.Update.Run(ctx, updateHost{n}) })
	return nil
}

// updateHost is the node for the update module.
type updateHost struct{ n *Node }

func (h updateHost) Healthy() error { return h.n.healthy() }
func (h updateHost) NodeID() uint32 { return h.n.ID() }
func (h updateHost) FarmID() uint32 { return h.n.farmID.Load() }

// FarmChannel is the release channel the node's farm chose.
func (h updateHost) FarmChannel(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f, err := h.n.grid.Farm(ctx, h.n.farmID.Load())
	if err != nil {
		return "", err
	}
	return f.Channel, nil
}

// healthy is the update gate's self-check: registered, connected to the
// grid, every module fine.
func (n *Node) healthy() error {
	if n.ID() == 0 {
		return errors.New("not registered")
	}
	if !n.nc.IsConnected() {
		return errors.New("not connected to the grid")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for m, s := range n.modules {
		if s != "ok" {
			return fmt.Errorf("module %s: %s", m, s)
		}
	}
	return nil
}

var _ gridsync.Registry = (*registry.Client)(nil)

// engineDeployments are the provision engine's deployments for gridsync.
type engineDeployments struct{ e *provision.Engine }

func (d engineDeployments) Get(twin uint32, contract uint64) (*gridtypes.Deployment, error) {
	return d.e.Store().Get(twin, contract)
}

func (d engineDeployments) All() ([]*gridtypes.Deployment, error) { return d.e.Store().All() }

func (d engineDeployments) Deprovision(twin uint32, contract uint64, reason string) error {
	return d.e.Deprovision(twin, contract, reason)
}

func (d engineDeployments) ApplyContractState(c billing.StateChange) error {
	return d.e.ApplyContractState(c)
}

// gridHost is the node for the uptime loop.
type gridHost struct{ n *Node }

func (h gridHost) Register(ctx context.Context) error { return h.n.register(ctx) }

func (h gridHost) Uptime() (time.Duration, error) {
	info, err := sysinfo.Read()
	if err != nil {
		return 0, err
	}
	return info.Uptime, nil
}

// connect makes sure the node's key has a twin (the only thing an unknown
// key may do), then connects again with the twin's rights.
func (n *Node) connect(ctx context.Context, key identity.Key) (*nats.Conn, uint32, error) {
	opts := []nats.Option{nats.Name("zos-node"), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second)}
	var twin registry.Twin
	err := n.retry(ctx, "grid", func() error {
		nc, err := rmb.Connect(n.cfg.Grid, key, opts...)
		if err != nil {
			return fmt.Errorf("connecting to the grid at %s: %w", n.cfg.Grid, err)
		}
		defer nc.Close()
		twin, err = registry.NewClient(nc, key, registry.WithClock(n.cfg.now())).CreateTwin(ctx, "")
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	// The node's lasting connection logs its losses and recoveries
	// (grid_disconnected, grid_reconnected), once per transition.
	opts = append(opts, rmb.ConnLogging(n.log.With("component", "grid"))...)
	var nc *nats.Conn
	err = n.retry(ctx, "grid", func() (err error) {
		nc, err = rmb.Connect(n.cfg.Grid, key, opts...)
		return err
	})
	return nc, twin.ID, err
}

func resources(c gridtypes.Capacity) registry.Resources {
	return registry.Resources{CRU: c.CRU, MRU: c.MRU, SRU: c.SRU, HRU: c.HRU}
}

// register creates or updates the node's record.
func (n *Node) register(ctx context.Context) error {
	node, err := n.grid.RegisterNode(ctx, registry.NodeRegistration{
		FarmID:      n.cfg.FarmID,
		FarmToken:   n.cfg.FarmToken,
		Total:       resources(n.Total()),
		Reserved:    resources(n.Reserved()),
		Interfaces:  interfaces(n.cfg.ListenIP),
		Location:    n.cfg.Location,
		Virtualized: n.hyper.Virtualized,
		Features:    n.Features(),
		Firmware:    n.firmware(),
		Version:     version.String(),
		UpdateFailed: func() []string {
			if n.cfg.Update == nil {
				return nil
			}
			return n.cfg.Update.Failed()
		}(),
	})
	if err != nil {
		return fmt.Errorf("registering node: %w", err)
	}
	n.nodeID.Store(node.ID)
	n.farmID.Store(node.FarmID)
	n.publicConfig6(node.PublicConfig)
	return nil
}

// publicConfig6 applies the farm's static IPv6 (ipv6, gw6 of the node's
// public config, for a LAN without router advertisements) on a node
// owning its uplink; a bad config is logged and changes nothing (IPv4 and
// SLAAC keep working). A change of the config applies at the next
// registration (the node's start).
func (n *Node) publicConfig6(pc *registry.PublicConfig) {
	if pc == nil || pc.IPv6 == "" || n.network == nil || !n.ownsUplink() {
		return
	}
	if err := n.network.SetStatic6(pc.IPv6, pc.GW6); err != nil {
		n.log.Warn("public_config_ipv6_refused", "err", err)
		return
	}
	n.log.Info("public_config_ipv6", "ipv6", pc.IPv6, "gw6", pc.GW6)
}

func interfaces(ip string) []registry.Interface {
	out := []registry.Interface{{Name: "zos", IPs: []string{ip}}}
	// The physical NICs, with their MACs: what a farm peer wakes the node
	// by (Wake-on-LAN).
	for _, nic := range power.PhysicalNICs("/sys/class/net") {
		out = append(out, registry.Interface{Name: nic.Name, MAC: nic.MAC})
	}
	return out
}
