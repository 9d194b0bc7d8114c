package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/zos-go/zos/internal/node/node"
	"github.com/zos-go/zos/internal/node/update"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/resp"
	"github.com/zos-go/zos/internal/sys/pid1"
	"github.com/zos-go/zos/internal/version"
	"github.com/zos-go/zos/internal/wait"
)

// NodeConfig is the node child's configuration, passed by init as flags.
type NodeConfig struct {
	Config
	// ListenIP is the address of the NIC (the DHCP lease).
	ListenIP string
	// DataDir holds the pool mounts (in the RAM root).
	DataDir string
	// StatusFile is where the console's NodeStatus is written.
	StatusFile string
	ZDBPort    int
	// VMKernel, Vminit and Accel are the node's (node.Config): the image
	// passes its guest kernel tree; "" runs no VMs.
	VMKernel, Vminit, Accel string
	// NodeEgress is the node's EgressAllow (--egress-allow, from
	// egress_allow=).
	NodeEgress []netip.Prefix
	// Update is the self-update module (nil: none), UpdateDir its
	// directory, whose state the console shows.
	Update    node.Updater
	UpdateDir string
}

// RunNode runs the node with the machine's disks (ScanHost) and writes its
// status for the console every few seconds until ctx ends.
func RunNode(ctx context.Context, cfg NodeConfig, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.ZDBPort == 0 {
		cfg.ZDBPort = resp.ZDBPort
	}
	loc, err := registry.ParseLocation(cfg.Location)
	if err != nil {
		return fmt.Errorf("location: %w", err)
	}
	modules := &moduleStates{}
	var upd *updateView
	if cfg.Update != nil {
		upd = &updateView{Updater: cfg.Update, fallback: cfg.UpdateChannel}
		cfg.Update = upd
	}
	var registered atomic.Pointer[node.Node]
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := node.Run(gctx, node.Config{
			DataDir: cfg.DataDir, Grid: cfg.Grid, FarmID: cfg.Farm, FarmToken: cfg.FarmToken, ScanHost: true,
			ListenIP: cfg.ListenIP, ZDBPort: cfg.ZDBPort, Location: loc,
			NewIdentity: cfg.NewIdentity, RecreateMissingDisks: cfg.RecreateMissingDisks, Update: cfg.Update,
			VMKernel: cfg.VMKernel, Vminit: cfg.Vminit, Accel: cfg.Accel, EgressAllow: cfg.NodeEgress,
			OnRegistered: func(n *node.Node) { registered.Store(n) },
			// Standby: PID 1 stops the node, unmounts, syncs and powers
			// off, as on the power button.
			Standby: func() error { return pid1.SignalInit(unix.SIGUSR2) },
			Status:  modules,
		}, log)
		if err == nil && ctx.Err() == nil {
			err = errors.New("the node stopped")
		}
		return err
	})
	g.Go(func() error {
		write := func() {
			s := NodeStatus{State: "starting", Farm: cfg.Farm, Grid: cfg.Grid, Updated: time.Now().UTC(), Modules: modules.snapshot(),
				Version: version.String()}
			if upd != nil {
				s.Channel, s.Update = upd.channel(gctx), "none yet"
				if st, err := update.LoadState(cfg.UpdateDir); err == nil {
					s.Update = UpdateResult(st)
				}
			}
			if n := registered.Load(); n != nil {
				s.State, s.NodeID, s.Pools = "registered", n.ID(), n.Pools()
			}
			if err := writeStatus(cfg.StatusFile, s); err != nil {
				log.Warn("status_write_failed", "err", err)
			}
		}
		write()
		wait.Every(gctx, 2*time.Second, write)
		return nil
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// updateView is the update module as the console sees it: it learns the
// node (its farm's channel) from the module's Run.
type updateView struct {
	node.Updater
	fallback string // the channel followed when the farm chose none

	mu      sync.Mutex // guards host, ch, checked
	host    updateHost // set once Run started
	ch      string     // the channel last learned
	checked time.Time  // when
}

var _ node.Updater = (*updateView)(nil)

// Updating passes on the update module's (the node refuses standby while
// it updates).
func (u *updateView) Updating() bool {
	b, ok := u.Updater.(interface{ Updating() bool })
	return ok && b.Updating()
}

// updateHost is the part of the node the console asks.
type updateHost = interface {
	Healthy() error
	NodeID() uint32
	FarmID() uint32
	FarmChannel(ctx context.Context) (string, error)
}

// Run implements node.Updater.
func (u *updateView) Run(ctx context.Context, host updateHost) error {
	u.mu.Lock()
	u.host = host
	u.mu.Unlock()
	return u.Updater.Run(ctx, host)
}

// channel is the farm's channel (asked at most every 30 s), else the
// fallback.
func (u *updateView) channel(ctx context.Context) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.host != nil && time.Since(u.checked) > 30*time.Second {
		u.checked = time.Now()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if ch, err := u.host.FarmChannel(cctx); err == nil {
			u.ch = ch
		}
		cancel()
	}
	if u.ch != "" {
		return u.ch
	}
	return u.fallback
}
