package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/node/primitives"
	"github.com/zos-go/zos/internal/testutil"
)

// consoleHas polls the console log of VM name on node n (read on the
// node's disk, not through the grid: no polling delay of its own) until
// it holds marker, and returns when it was seen.
func consoleHas(n *node, name, marker string, timeout time.Duration) (time.Time, bool) {
	var seen time.Time
	err := testutil.PollEvery(timeout, 20*time.Millisecond, func() (bool, error) {
		// <data>/mnt/<pool>/zos-cache/vm/machines/<vm>/console.log
		logs, _ := filepath.Glob(filepath.Join(n.data, "mnt", "*", "*", "vm", "machines", name, "console.log"))
		for _, l := range logs {
			if b, err := os.ReadFile(l); err == nil && strings.Contains(string(b), marker) {
				seen = time.Now()
				return true, nil
			}
		}
		return false, nil
	})
	return seen, err == nil
}

// BenchmarkVMs measures, through the grid with zosctl on a hosted node
// under tcg: the latency from `zosctl deploy vm` to the entrypoint's
// marker on the console (one VM; compare with scripts/bench/vm.sh's bare
// boot of the same kernel and initramfs), and the wall time of ten VMs
// deployed at once until all are ok and until all ran their entrypoint.
//
//	go test -run '^$' -bench VMs -benchtime 1x -timeout 30m ./internal/e2e
func BenchmarkVMs(b *testing.B) {
	cache := requireVMPrereqs(b)
	g := startGrid(b)
	farmer := newUser(b, g)
	n := vmNode(b, g, farmer, cache, "--disk", "ssd:20G", "--workers", "10")
	u := newUser(b, g)
	root := b.TempDir()
	buildRootfs(b, root)
	// The bench entrypoint needs no disk or volume.
	if err := os.WriteFile(filepath.Join(root, "mark.sh"), []byte("#!/bin/sh\necho zos-bench-marker\nexec sleep 2147483647\n"), 0o755); err != nil {
		b.Fatal(err)
	}
	url := publishFlist(b, u, root, "bench")
	id := strconv.Itoa(int(n.id))
	u.mustRun("network", "create", "--name", "net", "--nodes", id, "--ip-range", "10.31.0.0/16")
	twin := dial(b, u).twin.ID
	for i := 0; i < b.N; i++ {
		// One VM at a time, deploy to entrypoint: the first finds the
		// flist cold (download, FUSE daemon, blocks from the hub), the
		// others share its mount and cache.
		var lat, oks []float64
		for r := 0; r < 5; r++ {
			start := time.Now()
			var d gridtypes.Deployment
			name := fmt.Sprintf("one%d", r)
			u.json(&d, "deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
				"--entrypoint", "/mark.sh", "--name", name, "--ip", "10.31.2.2")
			oks = append(oks, time.Since(start).Seconds())
			seen, ok := consoleHas(n, primitives.VMName(gridtypes.NewWorkloadID(twin, d.ContractID, name)), "zos-bench-marker", 2*time.Minute)
			if !ok {
				b.Fatal("the VM's entrypoint never ran")
			}
			lat = append(lat, seen.Sub(start).Seconds())
			u.mustRun("deployment", "cancel", strconv.FormatUint(d.ContractID, 10))
		}
		for _, l := range strings.Split(n.proc.output(), "\n") {
			if strings.Contains(l, "zmachine_started") {
				b.Log(l)
			}
		}
		b.ReportMetric(lat[0], "s/cold-deploy-to-entrypoint")
		b.ReportMetric(median(lat[1:]), "s/deploy-to-entrypoint")
		b.ReportMetric(median(oks[1:]), "s/deploy-to-ok")

		// Ten at once, each its own deployment.
		const ten = 10
		var wg sync.WaitGroup
		contracts := make([]uint64, ten)
		errs := make([]error, ten)
		start := time.Now()
		for v := 0; v < ten; v++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, errOut, code := u.run("deploy", "vm", "--node", id, "--flist", url, "--network", "net", "--memory", "256M",
					"--entrypoint", "/mark.sh", "--name", fmt.Sprintf("vm%d", v), "--ip", fmt.Sprintf("10.31.2.%d", 10+v))
				if code != 0 {
					errs[v] = fmt.Errorf("vm%d: %s%s", v, out, errOut)
					return
				}
				if _, err := fmt.Sscanf(out, "contract %d", &contracts[v]); err != nil {
					errs[v] = fmt.Errorf("vm%d: %q: %v", v, out, err)
				}
			}()
		}
		wg.Wait()
		allOK := time.Since(start)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		var last time.Time
		for v := 0; v < ten; v++ {
			seen, ok := consoleHas(n, primitives.VMName(gridtypes.NewWorkloadID(twin, contracts[v], fmt.Sprintf("vm%d", v))), "zos-bench-marker", 5*time.Minute)
			if !ok {
				b.Fatalf("vm%d never ran its entrypoint", v)
			}
			if seen.After(last) {
				last = seen
			}
		}
		b.ReportMetric(allOK.Seconds(), "s/ten-vms-ok")
		b.ReportMetric(last.Sub(start).Seconds(), "s/ten-vms-entrypoint")
		for _, c := range contracts {
			u.mustRun("deployment", "cancel", strconv.FormatUint(c, 10))
		}
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}
