// Package natsd runs an embedded NATS server with JetStream: the transport of
// the grid plane. zgrid starts one (or one per process of a zgrid cluster);
// tests start one or three on loopback. It binds to loopback unless told
// otherwise, and takes an optional custom authenticator so that the relay can
// admit clients by their twin key. It watches the free space of its store
// (space.go): CheckStore refuses writes below a reserve, and JetStream is
// restarted in-process once there is room after it failed a write.
package natsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// RandomPort asks for a port chosen by the kernel.
const RandomPort = -1

// Config is the configuration of an embedded server.
type Config struct {
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// Name is the server name; required, and unique, in a cluster. Empty
	// means a name derived from the client port.
	Name string
	// Host is the client listen address (default 127.0.0.1).
	Host string
	// Port is the client port (0 means 4222, RandomPort a free one).
	Port int
	// HTTPPort is the monitoring port (0: no monitoring, RandomPort: a
	// free one).
	HTTPPort int
	// ClusterName, ClusterPort and Routes make the server a member of a
	// cluster: ClusterPort is where it listens for routes (on Host),
	// Routes the nats-route://host:port URLs of the other members.
	ClusterName string
	ClusterPort int
	Routes      []string
	// --- Route security (cluster.go) ---
	// ClusterAuth, when set, makes every route, accepted or dialled,
	// authenticate with its credentials over TLS with certificates of its
	// CA. A cluster port off loopback requires it.
	ClusterAuth *ClusterAuth
	// --- end of route security ---
	// MaxPayload is the largest message in bytes (0: the NATS default).
	MaxPayload int32
	// Authentication, when set, decides which clients may connect and
	// with which permissions; it is the seam of the relay's twin
	// authentication. The server then has two accounts (accounts.go): the
	// authenticator must implement AccountBinder and place each client in
	// GridAccount or TwinAccount.
	Authentication server.Authentication
	// TwinServices are the subjects of the grid account's services that
	// the twin account imports (the registry's requests). Only with
	// Authentication.
	TwinServices []string
	// StoreReserve is how many bytes to keep free on StoreDir's file
	// system: below it CheckStore refuses writes (space.go). 0 means
	// DefaultReserve, NoReserve none.
	StoreReserve int64
	// SpaceInterval is how often the store's free space is checked for
	// the store_low and store_ok logs and JetStream's recovery (default
	// 1 s).
	SpaceInterval time.Duration
	// ReadyTimeout bounds how long Start waits for the server to accept
	// connections (default 10 s).
	ReadyTimeout time.Duration
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.StoreDir == "" {
		return errors.New("natsd: store dir is required")
	}
	if c.Port < RandomPort || c.Port > 65535 || c.HTTPPort < RandomPort || c.HTTPPort > 65535 ||
		c.ClusterPort < RandomPort || c.ClusterPort > 65535 {
		return errors.New("natsd: port out of range")
	}
	if c.StoreReserve < NoReserve || c.SpaceInterval < 0 {
		return errors.New("natsd: negative store reserve or space interval")
	}
	if len(c.Routes) > 0 && c.ClusterPort == 0 {
		return errors.New("natsd: routes need a cluster port")
	}
	for _, r := range c.Routes {
		if _, err := url.Parse(r); err != nil {
			return fmt.Errorf("natsd: route %q: %w", r, err)
		}
	}
	return checkCluster(c) // route security (cluster.go)
}

// Server is a running embedded server.
type Server struct {
	ns       *server.Server
	log      *slog.Logger
	opts     *server.Options // as started, for restarting JetStream
	space    *spaceWatch     // the store's free space (space.go)
	stopOnce sync.Once       // of the space watch
}

// Start starts the server and waits until it accepts connections.
func Start(cfg Config, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "natsd")
	opts := &server.Options{}
	if cfg.Authentication != nil {
		if err := migrateStore(cfg.StoreDir, cfg.ClusterPort != 0); err != nil {
			return nil, err
		}
		// First: processing configuration text resets what it sets.
		if err := configureAccounts(opts, cfg.TwinServices); err != nil {
			return nil, err
		}
	}
	*opts = server.Options{
		Accounts:                   opts.Accounts,
		ServerName:                 cfg.Name,
		Host:                       cfg.Host,
		Port:                       cfg.Port,
		HTTPPort:                   cfg.HTTPPort,
		JetStream:                  true,
		StoreDir:                   cfg.StoreDir,
		NoSigs:                     true,
		MaxPayload:                 cfg.MaxPayload,
		CustomClientAuthentication: cfg.Authentication,
		// A custom authenticator checks a signature of the nonce.
		AlwaysEnableNonce: cfg.Authentication != nil,
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	opts.HTTPHost = opts.Host
	if opts.Port == 0 {
		opts.Port = 4222
	}
	if cfg.ClusterPort != 0 {
		opts.Cluster, opts.Routes = clusterOptions(cfg, opts.Host)
	}
	if opts.ServerName == "" {
		opts.ServerName = "zgrid-" + strconv.Itoa(opts.Port)
		if opts.Port == RandomPort {
			opts.ServerName = ""
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("creating nats server: %w", err)
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("creating store dir: %w", err)
	}
	space := &spaceWatch{dir: cfg.StoreDir, reserve: cfg.StoreReserve, interval: cfg.SpaceInterval,
		stop: make(chan struct{}), done: make(chan struct{})}
	if space.interval == 0 {
		space.interval = defaultSpaceInterval
	}
	ns.SetLoggerV2(logger{log, space}, false, false, false)
	if cfg.Authentication != nil {
		if err := bindAccounts(ns, cfg.Authentication); err != nil {
			return nil, err
		}
	}
	go ns.Start() // owned by ns: Shutdown stops it and WaitForShutdown joins it
	timeout := cfg.ReadyTimeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	if !ns.ReadyForConnections(timeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("starting nats server on %s:%d: not ready after %s", opts.Host, opts.Port, timeout)
	}
	s := &Server{ns: ns, log: log, opts: opts, space: space}
	log.Info("nats_started", "url", s.ClientURL(), "store", cfg.StoreDir, "cluster", opts.Cluster.Name)
	s.startSpaceWatch()
	return s, nil
}

// ClientURL is the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.ns.ClientURL() }

// MonitorAddr is the monitoring address, or nil without monitoring.
func (s *Server) MonitorAddr() *net.TCPAddr { return s.ns.MonitorAddr() }

// ClusterAddr is the route listen address, or nil outside a cluster.
func (s *Server) ClusterAddr() *net.TCPAddr { return s.ns.ClusterAddr() }

// NATS returns the underlying server, for what this package does not wrap.
func (s *Server) NATS() *server.Server { return s.ns }

// Shutdown stops the server and waits until it has stopped. It is safe to
// call more than once.
func (s *Server) Shutdown() {
	s.stopSpaceWatch() // first: it may restart JetStream
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Run blocks until ctx ends, then shuts the server down.
func (s *Server) Run(ctx context.Context) error {
	<-ctx.Done()
	s.Shutdown()
	s.log.Info("nats_stopped")
	return nil
}

// logger sends the server's logs to slog.
// It tells the space watch when JetStream could not write.
type logger struct {
	l     *slog.Logger
	space *spaceWatch
}

func (l logger) Noticef(format string, v ...any) { l.l.Debug("nats", "msg", fmt.Sprintf(format, v...)) }
func (l logger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.space.noteLog(msg)
	if strings.Contains(msg, "will not be verified") {
		// Routes skip host-name checks because VerifyPeerCertificate
		// checks the chain against the cluster's CA (cluster.go).
		l.l.Debug("nats", "msg", msg)
		return
	}
	l.l.Warn("nats", "msg", msg)
}
func (l logger) Fatalf(format string, v ...any) { l.l.Error("nats", "msg", fmt.Sprintf(format, v...)) }
func (l logger) Errorf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.space.noteLog(msg)
	l.l.Error("nats", "msg", msg)
}
func (l logger) Debugf(format string, v ...any) { l.l.Debug("nats", "msg", fmt.Sprintf(format, v...)) }
func (l logger) Tracef(string, ...any)          {}
