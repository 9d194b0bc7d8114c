// Package node wires the node's modules together and runs them: storage,
// identity, the grid connection and registration, the 0-db engine, the
// provision engine with its managers, the API over the relay, and the loops
// that report uptime, follow contract events and resync with the registry.
// It is the only package that sees the whole graph; cmd/zos calls Run.
package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zos-go/zos/internal/egress"
	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/metrics"
	"github.com/zos-go/zos/internal/node/facts"
	"github.com/zos-go/zos/internal/node/gridsync"
	"github.com/zos-go/zos/internal/node/network"
	"github.com/zos-go/zos/internal/node/network/gateway"
	"github.com/zos-go/zos/internal/node/planetary"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/node/provision"
	"github.com/zos-go/zos/internal/node/storage"
	"github.com/zos-go/zos/internal/node/usage"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/resp"
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
	// RecreateMissingDisks makes a hosted disk file that went missing (or
	// shrank) again, empty; without it that pool is shown failed.
	RecreateMissingDisks bool
	// NewIdentity lets a node whose key is lost (no copy on the cache or
	// any pool, although it had pools) take a new key and register as a
	// new node; without it the node refuses to start.
	NewIdentity bool
	// DiskCheckEvery is how often the pools' health is checked; 30 s
	// when 0.
	DiskCheckEvery time.Duration
	// QSFSRepairEvery is how often each qsfs checks and repairs its
	// shards; 10 min when 0.
	QSFSRepairEvery time.Duration
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
	// PlanetaryPeers are the public yggdrasil peers (tcp://HOST:PORT, ...):
	// with any, the node runs the planetary overlay in its namespace, its
	// key in DataDir/planetary (internal/node/planetary).
	PlanetaryPeers []string
	// OnRegistered, when set, is called once the node is registered, with
	// the node for read-only status (zos init's console).
	OnRegistered func(*Node)
	// Status, when set, receives every change of a module's state (zos
	// init's console shows what is wrong before the node registers).
	Status StatusSink
	// Now is the clock that times what the node signs and checks (relay
	// envelopes, registry writes); nil means time.Now. Tests of clock
	// skew move it.
	Now func() time.Time
	// GridKey is the grid's billing key the operator pins (zos node
	// --grid-key): the key that signs contract state changes (grace,
	// active, out of funds). Without it the node keeps the key it knows
	// (DataDir/grid-billing.key), else learns it once from GridKeys.
	GridKey ed25519.PublicKey
	// GridKeys tells the grid's billing key (the registry's grid info);
	// nil: state changes wait for a pinned key.
	GridKeys gridsync.GridKeys
	// UsageReporter sends what each contract held (registry.Client's
	// ReportUsage); nil: usage is not metered. UsageSampleEvery (1 min)
	// is how often contracts are looked at, UsageReportEvery (1 h, at most
	// a day) how often their windows end and are reported.
	UsageReporter                      usage.Reporter
	UsageSampleEvery, UsageReportEvery time.Duration
	// Location is where the node stands, as its operator says (zos node
	// --location, location= on the boot command line); a location the
	// farmer sets in the registry wins over it.
	Location registry.Location
	// Metrics, when set, is where the node serves Prometheus metrics
	// (HOST:PORT): loopback only unless MetricsAllowRemote.
	Metrics            string
	MetricsAllowRemote bool
	// FactsRoot is where the machine's /sys and /proc are read for its
	// facts (DMI, hypervisor); "" means "/".
	FactsRoot string
	// Update, when set, is the self-update module (internal/node/update):
	// it runs once the node is up; a switch it returns ends Run with that
	// error, for the caller to exec the version it names.
	Update Updater
	// Standby puts the machine in standby once the node agreed to (no
	// workloads, no update under way; internal/node/power): in the boot
	// image PID 1 powers off. nil (hosted mode): Run returns ErrStandby,
	// the node process ends and the host decides what else to do.
	Standby func() error
	// WakeTargets are where the node sends Wake-on-LAN packets for the
	// nodes of its farm (empty: the directed broadcast, port 9, of each
	// IPv4 LAN it is on).
	WakeTargets []netip.AddrPort
}

// ErrStandby ends Run of a hosted node the farmer put in standby.
var ErrStandby = errors.New("node in standby")

// now is the node's clock.
func (c *Config) now() func() time.Time {
	if c.Now == nil {
		return time.Now
	}
	return c.Now
}

// Updater is the self-update module (update.Manager).
type Updater interface {
	// Run gates a trial and watches for releases until ctx ends (nil) or
	// a switch is due (an error the caller acts on).
	Run(ctx context.Context, host interface {
		Healthy() error
		NodeID() uint32
		FarmID() uint32
		FarmChannel(ctx context.Context) (string, error)
	}) error
	// Failed are the releases that failed here (the node's record).
	Failed() []string
}

// StatusSink receives the state of the node's modules as it changes:
// "ok" or the module's last error.
type StatusSink interface {
	ModuleStatus(module, state string)
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
	if c.Metrics != "" {
		if err := metrics.CheckAddr(c.Metrics, c.MetricsAllowRemote); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if err := c.Location.Check(); err != nil {
		return fmt.Errorf("location: %w", err)
	}
	if c.ZDBPort == 0 {
		c.ZDBPort = resp.ZDBPort
	}
	if c.UptimeEvery <= 0 {
		c.UptimeEvery = 40 * time.Minute
	}
	if c.ResyncEvery <= 0 {
		c.ResyncEvery = time.Hour
	}
	usageDefaults(c)
	return nil
}

// Node is a running node. Its fields are set by the start-up tasks, each
// before the tasks after it run.
type Node struct {
	cfg Config
	log *slog.Logger

	planetaryMu  sync.Mutex
	planetary    *planetary.Process // planetary: nil while the overlay is down
	planetaryNet netip.Prefix       // planetary: the overlay /64 of the node's key, once loaded

	total   gridtypes.Capacity // system
	hyper   facts.Hypervisor   // system
	metrics *nodeMetrics       // nil without Config.Metrics
	egress  *egress.Policy     // system: what the node contacts for tenants
	storage *storage.Module    // storage
	cache   string             // storage: the cache's mount
	key     identity.Key       // identity
	nc      *nats.Conn         // grid: the connection with the twin's rights
	twin    uint32             // grid
	grid    *registry.Client   // grid
	zdb     *primitives.ZDBManager
	network *network.Manager
	gw      *gateway.Proxy   // network: nil unless a gateway
	gwm     *gateway.Manager // network: nil unless a gateway
	store   *provision.Store
	vms     *machines // vms: nil without a guest kernel
	engine  *provision.Engine
	nodeID  atomic.Uint32               // registration (0 before); the uptime loop registers again
	farmID  atomic.Uint32               // the farm of the last registration
	sync    *gridsync.Sync              // grid sync: the grid loops, OnJobDone
	usage   atomic.Pointer[usage.Usage] // usage: nil without a reporter; OnJobDone

	mu      sync.Mutex        // guards modules
	modules map[string]string // module -> "ok" or its error

	standby chan struct{} // hosted standby: ends Run with ErrStandby
}

// tasks is the node's start-up, in order. Teardown is the reverse (the
// runner's closer stack): once the services stopped, zlogs streams end,
// the provision store closes, the network resources go, the 0-db
// namespaces close and its listener, the grid connection, and last the
// pools are unmounted (unless VMs run on: a restart adopts them).
func (n *Node) tasks() []task {
	return []task{
		{"system", n.startSystem},
		{"storage", n.startStorage},
		{"identity", n.startIdentity},
		{"grid", n.startGrid},
		{"zdb", n.startZDB},
		{"network", n.startNetwork},
		{"provision store", n.startStore},
		{"vms", n.startVMs},
		{"provision", n.startEngine},
		{"disk watch", n.startDiskWatch},
		{"registration", n.startRegistration},
		{"api", n.startAPI},
		{"metrics", n.startMetrics},
		{"gateway", n.startGateway},
		{"grid sync", n.startGridSync},
		{"usage", n.startUsage},
		{"planetary", n.startPlanetary},
		{"update", n.startUpdate},
	}
}

// Run starts the node and blocks until ctx ends, then stops every module
// in reverse order. Start-up is the ordered list of named tasks above;
// the loops that follow run under an errgroup and restart when they fail.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	n := &Node{cfg: cfg, log: log, modules: map[string]string{}, standby: make(chan struct{}, 1)}
	if cfg.Metrics != "" {
		n.metrics = newNodeMetrics()
	}
	r := &runner{log: log}
	return r.run(ctx, n.tasks())
}

func (n *Node) setStatus(module string, err error) {
	state := "ok"
	if err != nil {
		state = err.Error()
	}
	n.mu.Lock()
	n.modules[module] = state
	n.mu.Unlock()
	if n.cfg.Status != nil {
		n.cfg.Status.ModuleStatus(module, state)
	}
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
func (n *Node) ID() uint32 { return n.nodeID.Load() }

// Pools implements api.Node: the storage pools in the API's wire type.
func (n *Node) Pools() []nodeapi.Pool {
	var out []nodeapi.Pool
	for _, p := range n.storage.Pools() {
		out = append(out, nodeapi.Pool{Name: p.Name, Type: string(p.Type), Size: p.Size, Used: p.Used, Broken: p.Broken})
	}
	return out
}

// Version implements api.Node.
func (n *Node) Version() string { return version.String() }

// Diagnostics implements api.Node.
func (n *Node) Diagnostics() nodeapi.Diagnostics {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := nodeapi.Diagnostics{Modules: map[string]string{}, SystemStatusOk: true, Healthy: true}
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

// serveLoop serves f as a restarting module (loop).
func (n *Node) serveLoop(r *runner, module string, f func(context.Context) error) {
	r.serve(module, func(ctx context.Context) error { return n.loop(ctx, module, f) })
}
