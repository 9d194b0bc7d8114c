// Package node wires the node's modules together and runs them: storage,
// identity, the grid connection and registration, the 0-db engine, the
// provision engine with its managers, the API over the relay, and the loops
// that report uptime, follow contract events and resync with the registry.
// It is the only package that sees the whole graph; cmd/zos calls Run.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/node/api"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/zdb"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
	"github.com/zos-go/zos/internal/sys/sysinfo"
	"github.com/zos-go/zos/internal/version"
)

// Config of a node.
type Config struct {
	// DataDir holds everything of a hosted node: disk files, pool mounts.
	DataDir string
	// Grid is the NATS URL (or comma-separated URLs) of the grid.
	Grid string
	// FarmID is the farm the node registers under; FarmToken the farmer's
	// consent (zosctl farm token), needed to join or move to the farm, not
	// to register again in it. Without FarmID, the token's farm.
	FarmID    uint32
	FarmToken string
	// Disks are the hosted-mode loop-backed disks.
	Disks []storage.HostedDisk
	// ScanHost claims the machine's free disks (real nodes only).
	ScanHost bool
	// Prefix distinguishes the kernel objects of several nodes on one host.
	Prefix string
	// ReservedMem is the memory kept for the system; 0 means
	// max(10% of RAM, 2 GiB) as the original.
	ReservedMem uint64
	// ListenIP is the address workloads are reached on (zdb); ZDBPort the
	// port of the 0-db server.
	ListenIP string
	ZDBPort  int
	// UptimeEvery is how often uptime is reported (40 min as the original).
	UptimeEvery time.Duration
	// ResyncEvery is how often contracts are compared with the registry.
	ResyncEvery time.Duration
	// Workers bounds deployments provisioned at once.
	Workers int
	// NetNS is a namespace that stands for the node's root namespace and
	// holds its uplink (several nodes on one host): network resources are
	// NATed through it. "" keeps the host's namespace: resources are NATed
	// there only when the node owns the machine (ScanHost).
	NetNS string
	// GatewayListen, when set, makes the node a gateway: its TLS front
	// listens there (in NetNS). Certificates come from the ACME server
	// at ACMEDirectory, or, only if GatewaySelfSigned, are self-signed.
	GatewayListen     string
	ACMEDirectory     string
	GatewaySelfSigned bool
	// VMKernel is the guest kernel: the directory of Debian's kernel
	// package (`zos kernel fetch --dir DIR`, make deps: .cache/kernel) or
	// an unpacked tree (the image's /usr/lib/zos/guest); without it the
	// node runs no VMs. Vminit is the guest init ("" = vminit next to
	// the zos binary). Accel is auto, kvm or tcg.
	VMKernel, Vminit, Accel string
	// EgressAllow are prefixes the node contacts on a tenant's behalf
	// (flist downloads and their stores, zlogs outputs) although they are
	// loopback, link-local or private addresses (a test hub on loopback,
	// a private farm's LAN). Without them only public addresses are, and
	// never the node's own.
	EgressAllow []netip.Prefix
	// OnRegistered, when set, is called once the node is registered, with
	// the node for read-only status (zos init's console).
	OnRegistered func(*Node)
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		return fmt.Errorf("data dir %q must be an absolute path", c.DataDir)
	}
	if c.Grid == "" {
		return errors.New("grid URL is required")
	}
	if c.FarmToken != "" {
		t, err := registry.ParseFarmToken(c.FarmToken)
		if err != nil {
			return fmt.Errorf("farm token: %w", err)
		}
		if c.FarmID == 0 {
			c.FarmID = t.FarmID
		}
		if c.FarmID != t.FarmID {
			return fmt.Errorf("farm token is for farm %d, not farm %d", t.FarmID, c.FarmID)
		}
	}
	if c.FarmID == 0 {
		return errors.New("farm id or farm token is required")
	}
	if c.ListenIP == "" {
		c.ListenIP = "127.0.0.1"
	}
	if net.ParseIP(c.ListenIP) == nil {
		return fmt.Errorf("listen ip %q is not an IP address", c.ListenIP)
	}
	if c.GatewayListen != "" && c.ACMEDirectory == "" && !c.GatewaySelfSigned {
		return errors.New("a gateway needs an ACME directory URL, or self-signed certificates asked for explicitly")
	}
	if c.ZDBPort == 0 {
		c.ZDBPort = 9900
	}
	if c.UptimeEvery <= 0 {
		c.UptimeEvery = 40 * time.Minute
	}
	if c.ResyncEvery <= 0 {
		c.ResyncEvery = time.Hour
	}
	return nil
}

// Node is a running node.
type Node struct {
	cfg Config
	log *slog.Logger

	storage *storage.Module
	egress  *egress.Policy // what the node contacts for tenants
	network *network.Manager
	vms     *machines
	engine  *provision.Engine
	grid    *registry.Client
	nodeID  uint32
	total   gridtypes.Capacity

	mu       sync.Mutex        // guards modules and dirty
	modules  map[string]string // module -> "ok", "starting" or its error
	dirty    map[uint64]uint32 // contract -> twin, use to report
	usedWake chan struct{}
}

func (n *Node) setStatus(module string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil {
		n.modules[module] = "ok"
		return
	}
	n.modules[module] = err.Error()
}

// Total implements api.Node and provision.Resources.
func (n *Node) Total() gridtypes.Capacity {
	return gridtypes.Capacity{CRU: n.total.CRU, MRU: n.total.MRU, SRU: n.storage.Total(storage.SSD), HRU: n.storage.Total(storage.HDD)}
}

// Reserved is what the system keeps: memory reserve and the cache.
func (n *Node) Reserved() gridtypes.Capacity {
	mem := n.cfg.ReservedMem
	if mem == 0 {
		mem = max(n.total.MRU/10, 2*gridtypes.Gigabyte)
	}
	return gridtypes.Capacity{MRU: mem, SRU: n.storage.CacheReserved()}
}

// ID is the node id the registry gave (0 before registration).
func (n *Node) ID() uint32 { return n.nodeID }

// Pools implements api.Node.
func (n *Node) Pools() []storage.PoolInfo { return n.storage.Pools() }

// Version implements api.Node.
func (n *Node) Version() string { return version.String() }

// Diagnostics implements api.Node.
func (n *Node) Diagnostics() api.Diagnostics {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := api.Diagnostics{Modules: map[string]string{}, SystemStatusOk: true, Healthy: true}
	for k, v := range n.modules {
		d.Modules[k] = v
		if v != "ok" {
			d.Healthy = false
		}
	}
	_, d.LimitedCache = n.storage.Cache()
	if d.LimitedCache {
		d.Healthy = false
	}
	return d
}

// retry runs f until it succeeds or ctx ends, recording failures as the
// module's status and backing off up to a minute.
func (n *Node) retry(ctx context.Context, module string, f func() error) error {
	delay := time.Second
	for {
		err := f()
		n.setStatus(module, err)
		if err == nil {
			return nil
		}
		n.log.Warn("module_failed", "module", module, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Minute)
	}
}

// Run starts the node and blocks until ctx ends, then stops every module
// in reverse order. Startup is an ordered list of named steps; the loops
// that follow run under an errgroup and restart when they fail.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	n := &Node{cfg: cfg, log: log, modules: map[string]string{}, usedWake: make(chan struct{}, 1)}
	n.egress = &egress.Policy{Allow: cfg.EgressAllow, Own: egress.InterfaceAddrs(30 * time.Second)}
	info, err := sysinfo.Read()
	if err != nil {
		return err
	}
	n.total = gridtypes.Capacity{CRU: uint64(info.CPUs), MRU: info.Memory}

	// 1. Storage: disks, pools, cache. Everything persistent lives there.
	st, err := storage.New(storage.Config{
		Root: filepath.Join(cfg.DataDir, "mnt"), DataDir: filepath.Join(cfg.DataDir, "disks"),
		Disks: cfg.Disks, ScanHost: cfg.ScanHost, Prefix: cfg.Prefix,
	}, log.With("component", "storage"), storage.HostSystem())
	if err != nil {
		return err
	}
	if err := st.Start(ctx); err != nil {
		st.Close()
		return fmt.Errorf("starting storage: %w", err)
	}
	defer func() {
		// Last: unmount pools, detach loop devices. VMs outlive the node
		// process (a restart adopts them): their pools stay mounted.
		if n.vms != nil && len(n.vms.vms.List()) > 0 {
			log.Info("vms_left_running", "count", len(n.vms.vms.List()))
			return
		}
		st.Close()
	}()
	n.storage = st
	n.setStatus("storage", nil)
	cache, limited := st.Cache()
	if limited {
		log.Warn("limited_cache", "path", cache)
	}

	// 2. Identity: the node key, on the cache, mirrored to every pool.
	var poolDirs []string
	for _, p := range st.Pools() {
		if p.Broken == "" {
			poolDirs = append(poolDirs, filepath.Join(cfg.DataDir, "mnt", p.Name))
		}
	}
	key, err := loadIdentity(cache, poolDirs, log.With("component", "identity"))
	if err != nil {
		return err
	}
	n.setStatus("identity", nil)

	// 3. Grid: twin, connection with the twin's rights, registration.
	nc, twin, err := n.connect(ctx, key)
	if err != nil {
		return err
	}
	defer nc.Close()
	n.grid = registry.NewClient(nc, key)

	// 4. 0-db: one server for the stores of every HDD zdb device.
	// Users get namespaces through deployments only: the admin commands
	// (NSNEW, NSDEL, NSSET, STOP) are locked behind a random password.
	admin := make([]byte, 32)
	if _, err := rand.Read(admin); err != nil {
		return fmt.Errorf("making the 0-db admin password: %w", err)
	}
	zsrv := zdb.NewServer(zdb.ServerConfig{Admin: hex.EncodeToString(admin), Protect: true}, log.With("component", "zdb"))
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenIP, strconv.Itoa(cfg.ZDBPort)))
	if err != nil {
		return fmt.Errorf("listening for 0-db: %w", err)
	}
	zdbm, err := primitives.NewZDBManager(st, zsrv, func() []string { return []string{cfg.ListenIP} }, uint(cfg.ZDBPort), log.With("component", "zdb"))
	if err != nil {
		ln.Close()
		return err
	}
	defer zdbm.Close()

	// 4b. Networks: namespaces, bridges, WireGuard devices. Close stops the
	// devices and removes the resources; they are rebuilt from the store.
	netlog := log.With("component", "network")
	// A node owns its namespace's forwarding and firewall when it runs in
	// a namespace of its own (--netns) or owns the machine (a booted node,
	// or --scan-host): resources are NATed there.
	n.network = network.NewManager(network.Config{Prefix: cfg.Prefix, NodeNS: cfg.NetNS, Uplink: cfg.NetNS != "" || cfg.ScanHost,
		TenantPorts: cfg.ownPorts(), ReservedPorts: cfg.ownPorts()},
		network.SysKernel{}, network.SysWireGuard{Log: netlog}, netlog)
	if err := n.network.Start(); err != nil {
		ln.Close()
		return fmt.Errorf("starting the network module: %w", err)
	}
	defer n.network.Close()
	gw, gwm := n.gateway(cache, netlog)

	// 5. Provision engine on the cache.
	store, err := provision.OpenStore(filepath.Join(cache, "provision.bolt"))
	if err != nil {
		ln.Close()
		return err
	}
	defer store.Close()
	n.vms, err = n.startMachines(ctx, cache, log)
	if err != nil {
		ln.Close()
		return fmt.Errorf("starting the VM module: %w", err)
	}
	managers := map[gridtypes.WorkloadType]provision.Manager{
		gridtypes.ZMountType:   &primitives.ZMountManager{Storage: st},
		gridtypes.VolumeType:   &primitives.VolumeManager{Storage: st},
		gridtypes.ZDBType:      zdbm,
		gridtypes.NetworkType:  n.network,
		gridtypes.PublicIPType: network.NewPublicIPManager(cfg.NetNS, network.SysKernel{}, n.grid, netlog),
	}
	zlogs := primitives.NewZLogsManager(primitives.ZLogsConfig{Egress: n.egress}, n, n.network.Dialer, log.With("component", "zlogs"))
	defer zlogs.Close()
	managers[gridtypes.ZLogsType] = zlogs
	if n.vms != nil {
		managers[gridtypes.ZMachineType] = n.vms.manager
	}
	if gwm != nil {
		managers[gridtypes.GatewayNameProxyType] = gwm
		managers[gridtypes.GatewayFQDNProxyType] = gwm
	}
	n.engine = provision.NewEngine(provision.Config{Workers: cfg.Workers, OnJobDone: n.reportUsed}, store,
		managers, n, log.With("component", "provision"))

	// 6. Registration under the farm.
	if err := n.retry(ctx, "registration", func() error { return n.register(ctx) }); err != nil {
		ln.Close()
		return err
	}
	log.Info("node_registered", "node", n.nodeID, "twin", twin, "farm", cfg.FarmID)
	if cfg.OnRegistered != nil {
		cfg.OnRegistered(n)
	}

	// 7. API over the relay.
	srv := rmb.NewServer(nc, twin, key, n.grid, log.With("component", "api"))
	api.New(n.nodeID, n.grid, n.engine, n).Register(srv)

	var gwln net.Listener
	if gw != nil {
		if gwln, err = gateway.Listen(cfg.NetNS, cfg.GatewayListen); err != nil {
			ln.Close()
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	if gw != nil {
		g.Go(func() error { return gw.Serve(gctx, gwln) })
	}
	g.Go(func() error { return zsrv.Serve(gctx, ln) })
	g.Go(func() error { return n.engine.Run(gctx) })
	g.Go(func() error { return n.loop(gctx, "api", func(ctx context.Context) error { return srv.Serve(ctx) }) })
	g.Go(func() error { return n.loop(gctx, "uptime", n.uptimeLoop) })
	g.Go(func() error {
		return n.loop(gctx, "events", func(ctx context.Context) error { return n.events(ctx, cache) })
	})
	g.Go(func() error { return n.loop(gctx, "resync", n.resyncLoop) })
	g.Go(func() error { return n.loop(gctx, "used", n.usedLoop) })
	if n.vms != nil {
		g.Go(func() error {
			return n.loop(gctx, "vms", func(ctx context.Context) error { return n.monitorVMs(ctx, n.vms.vms) })
		})
	}
	n.setStatus("provision", nil)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// loop runs a long-lived module, restarting it after a failure; only the
// end of ctx stops it.
func (n *Node) loop(ctx context.Context, module string, f func(context.Context) error) error {
	n.setStatus(module, nil)
	delay := time.Second
	for {
		err := f(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("stopped")
		}
		n.setStatus(module, err)
		n.log.Warn("module_failed", "module", module, "err", err, "restart_in", delay)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Minute)
		n.setStatus(module, nil)
	}
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
		twin, err = registry.NewClient(nc, key).CreateTwin(ctx, "")
		return err
	})
	if err != nil {
		return nil, 0, err
	}
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
		Virtualized: true,
		Version:     version.String(),
	})
	if err != nil {
		return fmt.Errorf("registering node: %w", err)
	}
	n.nodeID = node.ID
	return nil
}

func interfaces(ip string) []registry.Interface {
	return []registry.Interface{{Name: "zos", IPs: []string{ip}}}
}

// uptimeLoop re-registers (capacity may have changed) and reports uptime
// now and every UptimeEvery.
func (n *Node) uptimeLoop(ctx context.Context) error {
	t := time.NewTicker(n.cfg.UptimeEvery)
	defer t.Stop()
	for {
		info, err := sysinfo.Read()
		if err != nil {
			return err
		}
		if err := n.register(ctx); err != nil {
			return err
		}
		if err := n.grid.ReportUptime(ctx, n.nodeID, uint64(info.Uptime.Seconds())); err != nil {
			return fmt.Errorf("reporting uptime: %w", err)
		}
		n.setStatus("uptime", nil)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reportUsed marks a contract whose use changed after a job; the used
// loop reports the marked contracts together, so a burst of deployments
// costs the registry one write per interval instead of one per job.
func (n *Node) reportUsed(twin uint32, contract uint64) {
	n.mu.Lock()
	if n.dirty == nil {
		n.dirty = map[uint64]uint32{}
	}
	n.dirty[contract] = twin
	n.mu.Unlock()
	select {
	case n.usedWake <- struct{}{}:
	default:
	}
}

// usedLoop reports what the marked contracts use, at most twice a second.
func (n *Node) usedLoop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.usedWake:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
		n.mu.Lock()
		dirty := n.dirty
		n.dirty = nil
		n.mu.Unlock()
		used := make(map[uint64]registry.Resources, len(dirty))
		for contract, twin := range dirty {
			d, err := n.engine.Store().Get(twin, contract)
			if errors.Is(err, provision.ErrNotFound) {
				used[contract] = registry.Resources{}
				continue
			}
			if err != nil {
				return err
			}
			c, err := provision.UsedBy(d)
			if err != nil {
				return err
			}
			used[contract] = resources(c)
		}
		if err := n.grid.ReportUsed(ctx, n.nodeID, used); err != nil {
			// Keep them for the next round.
			n.mu.Lock()
			for contract, twin := range dirty {
				if _, again := n.dirty[contract]; !again {
					if n.dirty == nil {
						n.dirty = map[uint64]uint32{}
					}
					n.dirty[contract] = twin
				}
			}
			n.mu.Unlock()
			return fmt.Errorf("reporting used capacity: %w", err)
		}
	}
}

// events follows the node's event stream from the last sequence it
// handled (kept on the cache) and deprovisions canceled contracts.
func (n *Node) events(ctx context.Context, cache string) error {
	seqFile := filepath.Join(cache, "events.seq")
	var last uint64
	if b, err := os.ReadFile(seqFile); err == nil {
		last, _ = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	}
	ch, err := n.grid.WatchNode(ctx, n.nodeID, last)
	if err != nil {
		return fmt.Errorf("watching node events: %w", err)
	}
	for ev := range ch {
		if ev.Kind == registry.EventResync {
			// Events were lost (aged out of the stream): compare with the
			// registry instead.
			if err := n.resync(ctx); err != nil {
				n.log.Warn("resync_failed", "err", err)
			}
			continue
		}
		if ev.Kind == registry.EventContractCanceled && ev.Contract != nil {
			if err := n.verifyCancel(ctx, *ev.Contract); err != nil {
				n.log.Error("cancel_event_rejected", "contract", ev.Contract.ID, "err", err)
				continue
			}
			err := n.engine.Deprovision(ev.Contract.TwinID, ev.Contract.ID, "contract canceled")
			if err != nil && !errors.Is(err, provision.ErrNotFound) {
				n.log.Error("deprovision_failed", "contract", ev.Contract.ID, "err", err)
			}
		}
		if err := os.WriteFile(seqFile, []byte(strconv.FormatUint(ev.Seq, 10)), 0o600); err != nil {
			n.log.Warn("events_seq_save_failed", "err", err)
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("event stream closed")
}

// verifyCancel checks that the owner of a contract signed its
// cancellation: the registry alone cannot take a deployment down.
func (n *Node) verifyCancel(ctx context.Context, c registry.Contract) error {
	key, err := n.grid.TwinKey(ctx, c.TwinID)
	if err != nil {
		return err
	}
	return registry.VerifyContract(c, key)
}

// resyncLoop deprovisions local deployments whose contract is no longer
// active on the grid, now and every ResyncEvery: it catches events missed
// while the node was down or the stream was cut.
func (n *Node) resyncLoop(ctx context.Context) error {
	t := time.NewTicker(n.cfg.ResyncEvery)
	defer t.Stop()
	for {
		if err := n.resync(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (n *Node) resync(ctx context.Context) error {
	active, err := n.grid.ActiveNodeContracts(ctx, n.nodeID)
	if err != nil {
		return fmt.Errorf("listing active contracts: %w", err)
	}
	ok := map[uint64]bool{}
	for _, c := range active {
		ok[c.ID] = true
	}
	all, err := n.engine.Store().All()
	if err != nil {
		return err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ContractID < all[j].ContractID })
	for _, d := range all {
		if ok[d.ContractID] || !provision.Active(d) {
			continue
		}
		// Only a cancellation signed by the owner takes a deployment down;
		// a contract the registry lost or cannot prove is kept and reported.
		c, err := n.grid.Contract(ctx, d.ContractID)
		if err == nil && c.State != registry.StateCanceled {
			continue
		}
		if err == nil {
			err = n.verifyCancel(ctx, c)
		}
		if err != nil {
			n.log.Warn("resync_kept_deployment", "contract", d.ContractID, "err", err)
			continue
		}
		if err := n.engine.Deprovision(d.TwinID, d.ContractID, "contract canceled (found by resync)"); err != nil {
			n.log.Error("deprovision_failed", "contract", d.ContractID, "err", err)
		}
	}
	return nil
}
