package boot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/zos-go/zos/internal/node/node"
	"github.com/zos-go/zos/internal/resp"
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
	modules := &moduleStates{}
	var registered atomic.Pointer[node.Node]
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		err := node.Run(gctx, node.Config{
			DataDir: cfg.DataDir, Grid: cfg.Grid, FarmID: cfg.Farm, FarmToken: cfg.FarmToken, ScanHost: true,
			ListenIP: cfg.ListenIP, ZDBPort: cfg.ZDBPort,
			VMKernel: cfg.VMKernel, Vminit: cfg.Vminit, Accel: cfg.Accel,
			OnRegistered: func(n *node.Node) { registered.Store(n) },
			Status:       modules,
		}, log)
		if err == nil && ctx.Err() == nil {
			err = errors.New("the node stopped")
		}
		return err
	})
	g.Go(func() error {
		write := func() {
			s := NodeStatus{State: "starting", Farm: cfg.Farm, Grid: cfg.Grid, Updated: time.Now().UTC(), Modules: modules.snapshot()}
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
