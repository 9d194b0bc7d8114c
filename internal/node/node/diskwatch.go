package node

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/node/storage"
)

// startDiskWatch checks the pools' health every DiskCheckEvery and marks
// every workload on a pool that failed as failed, with the reason.
func (n *Node) startDiskWatch(_ context.Context, r *runner) error {
	every := n.cfg.DiskCheckEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	handled := map[string]bool{}
	r.serve("disk watch", func(ctx context.Context) error {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			n.storage.Check()
			for _, p := range n.storage.Pools() {
				if p.Broken != "" && !handled[p.Name] {
					handled[p.Name] = true
					n.failWorkloadsOn(p)
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return nil
}

// failWorkloadsOn marks failed every running workload that lives on pool p:
// volumes, virtual disks, zdb namespaces on its device, and VMs whose root
// or mounts are there. The namespaces on its device stop being served: a
// write the dying disk may lose is answered with an error, never
// acknowledged.
func (n *Node) failWorkloadsOn(p storage.PoolInfo) {
	on := n.storage.OnPool(p.Name)
	all, err := n.engine.Store().All()
	if err != nil {
		n.log.Error("pool_failed_workloads", "pool", p.Name, "err", err)
		return
	}
	reason := fmt.Sprintf("pool %s failed: %s", p.Name, p.Broken)
	count := 0
	for _, d := range all {
		for _, name := range affected(d, on, func(ns string) bool {
			if n.zdb == nil || !on.Device {
				return false
			}
			dev, ok := n.zdb.DeviceOf(ns)
			return ok && dev == p.Name
		}) {
			id := d.WorkloadID(name)
			if err := n.engine.Fail(id, reason); err != nil {
				n.log.Error("workload_fail_failed", "workload", id, "err", err)
				continue
			}
			count++
		}
	}
	if on.Device && n.zdb != nil {
		if err := n.zdb.FailDevice(p.Name); err != nil {
			n.log.Error("zdb_device_close_failed", "pool", p.Name, "err", err)
		}
	}
	n.log.Error("pool_failed", "pool", p.Name, "reason", p.Broken, "workloads", count)
}

// affected lists the running workloads of d that live on a pool holding on:
// a volume or disk there, a namespace on its zdb device (zdbOn), a VM
// whose root volume or one of whose mounts is there.
func affected(d *gridtypes.Deployment, on storage.On, zdbOn func(ns string) bool) []string {
	var out []string
	lost := map[string]bool{} // workload names whose storage is on the pool
	running := func(wl *gridtypes.Workload) bool {
		return wl.Result.State.IsOkay() || wl.Result.State == gridtypes.StateUnChanged
	}
	for i := range d.Workloads {
		wl := &d.Workloads[i]
		id := string(d.WorkloadID(wl.Name))
		switch wl.Type {
		case gridtypes.VolumeType:
			lost[wl.Name] = slices.Contains(on.Volumes, id)
		case gridtypes.ZMountType:
			lost[wl.Name] = slices.Contains(on.VDisks, id)
		case gridtypes.ZDBType:
			lost[wl.Name] = zdbOn(id)
		}
	}
	for i := range d.Workloads {
		wl := &d.Workloads[i]
		if !running(wl) {
			continue
		}
		hit := lost[wl.Name]
		if wl.Type == gridtypes.ZMachineType {
			hit = slices.Contains(on.Volumes, primitives.RootfsVolume(d.WorkloadID(wl.Name)))
			var m gridtypes.ZMachine
			if err := json.Unmarshal(wl.Data, &m); err == nil {
				for _, mnt := range m.Mounts {
					hit = hit || lost[mnt.Name]
				}
			}
		}
		if hit {
			out = append(out, wl.Name)
		}
	}
	return out
}
