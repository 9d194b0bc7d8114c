package lab

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/zos-go/zos/internal/identity"
	"github.com/zos-go/zos/internal/registry"
	"github.com/zos-go/zos/internal/rmb"
)

// nodeIDFromLog is the node id a node's log says it registered as (0:
// not yet).
func nodeIDFromLog(path string) uint32 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var id uint32
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.Contains(l, "msg=node_registered") {
			continue
		}
		for _, fl := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(fl, "node="); ok {
				if n, err := strconv.ParseUint(v, 10, 32); err == nil {
					id = uint32(n)
				}
			}
		}
	}
	return id
}

// publish waits for every node to register and gives each, as the farmer,
// a public config on the farm LAN (its LAN address, the farm router as
// gateway): the nodes are then access nodes for networks, as a farm's
// public nodes are.
func (l *Lab) publish(ctx context.Context) error {
	key, err := identity.Load(filepath.Join(l.Farmer, "key.json"))
	if err != nil {
		return fmt.Errorf("loading the farmer's key: %w", err)
	}
	nc, err := rmb.Connect(l.Grid, key)
	if err != nil {
		return err
	}
	defer nc.Close()
	reg := registry.NewClient(nc, key)
	deadline := time.Now().Add(3 * time.Minute)
	for i := range l.Nodes {
		for l.Nodes[i].ID = nodeIDFromLog(l.Nodes[i].Log); l.Nodes[i].ID == 0; l.Nodes[i].ID = nodeIDFromLog(l.Nodes[i].Log) {
			if time.Now().After(deadline) {
				return fmt.Errorf("node %d did not register in 3 minutes (log %s)", i+1, l.Nodes[i].Log)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		pc := &registry.PublicConfig{IPv4: netip.PrefixFrom(l.Net.Nodes[i].IP, 24).String(), GW4: LANGateway.String()}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := reg.SetPublicConfig(cctx, l.Nodes[i].ID, pc)
		cancel()
		if err != nil {
			return fmt.Errorf("setting the public config of node %d: %w", l.Nodes[i].ID, err)
		}
	}
	return nil
}
