// Package gridd is the grid plane of zgrid as a library: an embedded NATS
// server with JetStream (or a connection to an existing cluster), the
// relay's client authentication, the registry service, the explorer and the
// flist hub, started as an ordered list of named tasks. cmd/zgrid parses its
// flags into a Config and calls Run; tests start an in-process grid through
// gridd/gridtest.
package gridd

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/explorer"
	"github.com/zos-go/zos/internal/flist/hub"
	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/metrics"
	"github.com/zos-go/zos/internal/natsd"
	"github.com/zos-go/zos/internal/netboot"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// Config is the configuration of a grid (zgrid run's flags; Validate
// names them).
type Config struct {
	DataDir     string
	Listen      string
	Port        int // NATS client port; natsd.RandomPort in tests
	HTTPPort    int // explorer; 0 disables it, natsd.RandomPort picks one
	HubPort     int // flist hub; 0 disables it, natsd.RandomPort picks one
	MonitorPort int
	NATS        []string // existing cluster; no embedded server
	Replicas    int
	Name        string
	ClusterName string
	ClusterPort int
	Routes      []string
	// ClusterCA, ClusterCert and ClusterKey, all or none, are an
	// operator's PKI for the routes instead of the CA derived from the
	// system key (PEM files).
	ClusterCA   string
	ClusterCert string
	ClusterKey  string
	Auth        bool
	SystemKey   string
	// StoreReserve is the free space kept on the embedded server's store
	// (natsd.Config.StoreReserve: 0 auto, natsd.NoReserve none).
	StoreReserve int64
	LogLevel     string // cmd/zgrid's logger; Run logs to the one it is given
	// Ready, when set, is called once every task serves (a request sent
	// then gets an answer), with the addresses clients use (tests).
	Ready func(Addrs)
	// ReleaseTwins may publish releases to the hub (--release-twins).
	ReleaseTwins []uint32
	// Metrics, when set, is where the grid serves Prometheus metrics
	// (--metrics HOST:PORT): loopback only unless MetricsAllowRemote
	// (--metrics-allow-remote).
	Metrics            string
	MetricsAllowRemote bool
	// TreasuryTwins may deposit to balances (--treasury-twins).
	TreasuryTwins []uint32
	// BillingPeriod is how often the leader bills (--billing-period,
	// default an hour); GracePeriod how long a contract that cannot pay
	// is kept, paused, before it is deleted (--grace-period, default 14
	// days). The billing key is derived from the system key.
	BillingPeriod time.Duration
	GracePeriod   time.Duration
	// BootGrid is the grid URL network-booted nodes get (--boot-grid);
	// "" means nats://HOST:PORT with the host they reached the hub at.
	BootGrid string
	// BootRoot is the release root (TUF root metadata) the boot server
	// trusts first (--boot-root); nil trusts the first root published to
	// the hub.
	BootRoot []byte
}

// Addrs are where a running zgrid serves.
type Addrs struct {
	NATS     string // client URL
	Explorer string // host:port, empty without explorer
	Hub      string // host:port, empty without hub
	Metrics  string // host:port, empty without metrics
}

// Validate checks the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data is required"))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--replicas %d: want 1 to 5", c.Replicas))
	}
	if len(c.NATS) > 0 && (c.ClusterPort != 0 || len(c.Routes) > 0) {
		errs = append(errs, errors.New("--nats uses an existing cluster: --cluster-port and --routes are for the embedded server"))
	}
	if len(c.Routes) > 0 && c.ClusterPort == 0 {
		errs = append(errs, errors.New("--routes needs --cluster-port"))
	}
	if pki := c.ClusterCA + c.ClusterCert + c.ClusterKey; pki != "" {
		if c.ClusterCA == "" || c.ClusterCert == "" || c.ClusterKey == "" {
			errs = append(errs, errors.New("--cluster-ca, --cluster-cert and --cluster-key go together"))
		}
		if c.ClusterPort == 0 {
			errs = append(errs, errors.New("--cluster-ca, --cluster-cert and --cluster-key need --cluster-port"))
		}
	}
	if c.Metrics != "" {
		if err := metrics.CheckAddr(c.Metrics, c.MetricsAllowRemote); err != nil {
			errs = append(errs, fmt.Errorf("--metrics: %w", err))
		}
	}
	if c.BillingPeriod < 0 || c.GracePeriod < 0 {
		errs = append(errs, errors.New("--billing-period and --grace-period must not be negative"))
	}
	if c.Listen != "" && net.ParseIP(c.Listen) == nil {
		errs = append(errs, fmt.Errorf("--listen %q is not an IP address", c.Listen))
	}
	if !c.Auth && len(c.NATS) == 0 && c.Listen != "" && !net.ParseIP(c.Listen).IsLoopback() {
		// Without authentication every client has every right, the
		// grid's data included: only for a machine's own use.
		errs = append(errs, fmt.Errorf("--auth=false serves everyone with every right: refused on --listen %s (loopback only)", c.Listen))
	}
	return errors.Join(errs...)
}

// plane is what the tasks build and share. Each field is set by one task
// before the tasks after it start.
type plane struct {
	cfg      Config
	log      *slog.Logger
	sysKey   identity.Key
	srv      *natsd.Server                    // nil with --nats
	nc       *nats.Conn                       // the grid's own connection
	registry atomic.Pointer[registry.Service] // read by the authenticator
	addrs    Addrs
	// prom holds the grid's metrics (nil without --metrics); regReq the
	// registry's request metrics in it.
	prom   *prometheus.Registry
	regReq *metrics.Requests
	// serving are closed when the task that added them serves (the
	// registry once it has subscribed); zgrid is ready after all of them.
	serving []<-chan struct{}
}

// task is one step of startup: setup runs in order and may fail startup;
// run, when set, then runs under the errgroup until ctx ends.
type task struct {
	name  string
	setup func(ctx context.Context, p *plane) (run func(ctx context.Context) error, err error)
}

// tasks is zgrid, in start order. Teardown is the reverse: the explorer
// and the registry stop when ctx ends, then the connection closes, then the
// embedded server shuts down (see Run).
func tasks() []task {
	return []task{
		{"system-key", loadSystemKey},
		{"nats", startNATS},
		{"connect", connectNATS},
		{"registry", startRegistry},
		{"billing", startBilling},
		{"explorer", startExplorer},
		{"hub", startHub},
		{"metrics", startMetrics},
	}
}

// Run validates cfg, starts the tasks in order and serves until ctx ends
// or a task fails; cfg.Ready is called once every task serves. log gets
// task_started per task, zgrid_ready and zgrid_stopped.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	p := &plane{cfg: cfg, log: log}
	if cfg.Metrics != "" {
		p.prom = metrics.NewRegistry()
		p.regReq = metrics.NewRequests(p.prom, "zgrid", "registry", "Registry")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer func() {
		// Teardown, after every task returned: our connection first, then
		// the server under it.
		if p.nc != nil {
			p.nc.Close()
		}
		if p.srv != nil {
			p.srv.Shutdown()
		}
		log.Info("zgrid_stopped")
	}()
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range tasks() {
		start := time.Now()
		runFn, err := t.setup(gctx, p)
		if err != nil {
			cancel() // stop the tasks already running
			_ = g.Wait()
			return fmt.Errorf("starting %s: %w", t.name, err)
		}
		log.Info("task_started", "task", t.name, "took", time.Since(start).Round(time.Millisecond))
		if runFn != nil {
			g.Go(func() error {
				if err := runFn(gctx); err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
				return nil
			})
		}
	}
	// Ready means serving: the listeners accept already, the registry
	// answers once it has subscribed.
	for _, serving := range p.serving {
		select {
		case <-serving:
		case <-gctx.Done():
			return g.Wait()
		}
	}
	log.Info("zgrid_ready", "nats", p.addrs.NATS, "explorer", p.addrs.Explorer, "metrics", p.addrs.Metrics)
	if cfg.Ready != nil {
		cfg.Ready(p.addrs)
	}
	return g.Wait()
}

// loadSystemKey loads (creating it once) the key of the grid's own
// connections; the authenticator gives it every right.
func loadSystemKey(_ context.Context, p *plane) (func(context.Context) error, error) {
	path := p.cfg.SystemKey
	if path == "" {
		path = filepath.Join(p.cfg.DataDir, "system.key")
	}
	k, _, err := identity.LoadOrCreate(path)
	if err != nil {
		return nil, fmt.Errorf("loading system key %s: %w", path, err)
	}
	p.sysKey = k
	return nil, nil
}

// startNATS starts the embedded server, unless --nats names a cluster.
func startNATS(_ context.Context, p *plane) (func(context.Context) error, error) {
	if len(p.cfg.NATS) > 0 {
		p.addrs.NATS = strings.Join(p.cfg.NATS, ",")
		return nil, nil
	}
	nc := natsd.Config{
		StoreDir:    filepath.Join(p.cfg.DataDir, "jetstream"),
		Name:        p.cfg.Name,
		Host:        p.cfg.Listen,
		Port:        p.cfg.Port,
		HTTPPort:    p.cfg.MonitorPort,
		ClusterName: p.cfg.ClusterName,
		ClusterPort: p.cfg.ClusterPort,
		Routes:      p.cfg.Routes,
		// Below the reserve the registry refuses writes (startRegistry).
		StoreReserve: p.cfg.StoreReserve,
	}
	if p.cfg.Auth {
		// The relay's rules: clients sign the server's nonce with their
		// twin key; the grid's own key gets every right.
		nc.Authentication = natsd.NewAuthenticator(natsd.AuthConfig{
			Lookup: func(pub ed25519.PublicKey) (uint32, bool) {
				if svc := p.registry.Load(); svc != nil {
					return svc.LookupTwin(pub)
				}
				return 0, false
			},
			System: []ed25519.PublicKey{p.sysKey.Public()},
		}, p.log)
		// Twins reach the grid's account only through the registry's
		// request subjects (natsd accounts).
		nc.TwinServices = registry.ServiceSubjects()
		nc.MaxPayload = rmb.ServerMaxPayload
	}
	if p.cfg.ClusterPort != 0 {
		auth, err := clusterAuth(p.cfg, p.sysKey)
		if err != nil {
			return nil, err
		}
		nc.ClusterAuth = auth
	}
	srv, err := natsd.Start(nc, p.log)
	if err != nil {
		return nil, err
	}
	p.srv = srv
	p.addrs.NATS = srv.ClientURL()
	// The server is shut down in Run's teardown, after our connection.
	return nil, nil
}

// clusterAuth secures the routes of a cluster member: credentials and a CA
// derived from the system key every member shares, or the operator's PKI
// (credentials still from the key).
func clusterAuth(cfg Config, sysKey identity.Key) (*natsd.ClusterAuth, error) {
	name := cfg.Name
	if name == "" {
		name = "zgrid"
	}
	auth, err := natsd.DeriveClusterAuth(sysKey.Seed(), name)
	if err != nil {
		return nil, err
	}
	if cfg.ClusterCA != "" {
		if err := auth.LoadPKI(cfg.ClusterCA, cfg.ClusterCert, cfg.ClusterKey); err != nil {
			return nil, err
		}
	}
	return auth, nil
}

// connectNATS opens the grid's own connection, as the system key.
func connectNATS(_ context.Context, p *plane) (func(context.Context) error, error) {
	url := p.addrs.NATS
	if p.srv != nil {
		url = p.srv.ClientURL()
	}
	opts := []nats.Option{
		nats.Name("zgrid"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				p.log.Warn("nats_disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { p.log.Info("nats_reconnected", "url", c.ConnectedUrlRedacted()) }),
	}
	var nc *nats.Conn
	var err error
	if p.srv != nil && p.cfg.Auth {
		// Our own server checks keys: connect as the system key.
		nc, err = rmb.Connect(url, p.sysKey, opts...)
	} else {
		// An existing cluster (or --auth=false): its own rules apply.
		nc, err = nats.Connect(url, opts...)
		if err != nil {
			err = fmt.Errorf("connecting to %s: %w", url, err)
		}
	}
	if err != nil {
		return nil, err
	}
	p.nc = nc
	return nil, nil
}

// startRegistry opens the buckets (waiting for JetStream in a fresh
// cluster) and serves the registry.
func startRegistry(ctx context.Context, p *plane) (func(context.Context) error, error) {
	octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	// Every member derives the same billing key from the system key it
	// shares; nodes pin its public half (registry grid.info).
	billingKey, err := registry.DeriveBillingKey(p.sysKey.Seed())
	if err != nil {
		return nil, err
	}
	cfg := registry.Config{Replicas: p.cfg.Replicas, Billing: registry.BillingConfig{Key: billingKey,
		TreasuryTwins: p.cfg.TreasuryTwins, Period: p.cfg.BillingPeriod, Grace: p.cfg.GracePeriod}}
	if p.regReq != nil {
		cfg.Observe = p.regReq.Observe
	}
	if p.srv != nil {
		// Writes are refused at once while our store is under its
		// reserve (an existing cluster keeps its own disks).
		cfg.Store = p.srv
	}
	svc, err := registry.NewService(octx, cfg, p.nc, p.log)
	if err != nil {
		return nil, err
	}
	p.registry.Store(svc)
	p.serving = append(p.serving, svc.Serving())
	return svc.Run, nil
}

// startBilling runs the billing loop: every member runs it, the one that
// holds the billing lease bills.
func startBilling(_ context.Context, p *plane) (func(context.Context) error, error) {
	return p.registry.Load().RunBilling, nil
}

// startExplorer serves the explorer over the registry client.
func startExplorer(_ context.Context, p *plane) (func(context.Context) error, error) {
	if p.cfg.HTTPPort == 0 {
		return nil, nil
	}
	ln, err := p.listenHTTP(p.cfg.HTTPPort, "explorer")
	if err != nil {
		return nil, err
	}
	p.addrs.Explorer = ln.Addr().String()
	var cfg explorer.Config
	if p.srv != nil {
		cfg.Store = p.srv // /stats shows whether the store takes writes
	}
	ex := explorer.New(cfg, registry.NewClient(p.nc, identity.Key{}), p.log)
	return func(ctx context.Context) error { return ex.Serve(ctx, ln) }, nil
}

// startHub serves the flist hub (DATA/hub), checking uploads against the
// registry's twin keys.
func startHub(_ context.Context, p *plane) (func(context.Context) error, error) {
	if p.cfg.HubPort == 0 {
		return nil, nil
	}
	dir := filepath.Join(p.cfg.DataDir, "hub")
	boot, err := netboot.New(netboot.Config{ReleaseDir: filepath.Join(dir, "release"), TrustDir: filepath.Join(p.cfg.DataDir, "netboot"),
		Root: p.cfg.BootRoot, Grid: p.cfg.BootGrid, GridPort: natsPort(p.addrs.NATS)}, registry.NewClient(p.nc, identity.Key{}), p.log.With("component", "netboot"))
	if err != nil {
		return nil, err
	}
	h, err := hub.New(hub.Config{Dir: dir, ReleaseTwins: p.cfg.ReleaseTwins, Boot: boot}, registry.NewClient(p.nc, identity.Key{}), p.log.With("component", "hub"))
	if err != nil {
		return nil, err
	}
	ln, err := p.listenHTTP(p.cfg.HubPort, "hub")
	if err != nil {
		return nil, err
	}
	p.addrs.Hub = ln.Addr().String()
	return func(ctx context.Context) error { return h.Serve(ctx, ln) }, nil
}

// natsPort is the port of the first NATS URL in urls (4222 when it has
// none): booted nodes reach the grid on the hub's host at that port.
func natsPort(urls string) int {
	first, _, _ := strings.Cut(urls, ",")
	if u, err := url.Parse(first); err == nil {
		if n, err := strconv.Atoi(u.Port()); err == nil {
			return n
		}
	}
	return 4222
}

// listenHTTP listens for an HTTP service of zgrid (what names it in
// errors) on --listen (default loopback) and port (natsd.RandomPort: one
// the kernel picks).
func (p *plane) listenHTTP(port int, what string) (net.Listener, error) {
	if port == natsd.RandomPort {
		port = 0
	}
	host := p.cfg.Listen
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("listening for the %s: %w", what, err)
	}
	return ln, nil
}
