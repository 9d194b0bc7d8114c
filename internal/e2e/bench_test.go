package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
)

// BenchmarkDeployments sends 1,000 signed zdb deployments through the relay
// (contract, deploy, zos.deployment.wait until ok) with 16 in flight, and reports
// deployments/s, the p50/p99 latency from contract creation to ok, and the
// node's RSS when idle before and after; also the median of the first two
// phases (contract creation in the registry, the deploy call to the node).
//
//	go test -run '^$' -bench Deployments -benchtime 1x ./internal/e2e
func BenchmarkDeployments(b *testing.B) {
	const total, inflight = 1000, 16
	for i := 0; i < b.N; i++ {
		runDeployBench(b, total, inflight)
	}
}

func rssKiB(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// rssSettle is how long the node idles before its resident size is read:
// nothing signals that it has settled (garbage collected, caches trimmed),
// so the benchmark gives it this long.
const rssSettle = 2 * time.Second

func runDeployBench(b *testing.B, total, inflight int) {
	_, n, u := setup(b)
	c := dial(b, u)
	ctx := context.Background()
	nodeRec, err := c.reg.Node(ctx, n.id)
	if err != nil {
		b.Fatal(err)
	}
	time.Sleep(rssSettle)
	idle := rssKiB(n.proc.cmd.Process.Pid)

	lat := make([]time.Duration, total)
	// Phases: contract creation, the deploy call, then until ok.
	phContract := make([]time.Duration, total)
	phDeploy := make([]time.Duration, total)
	var wg sync.WaitGroup
	sem := make(chan struct{}, inflight)
	var errOnce sync.Once
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < total; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			err := func() error {
				d := c.deployment("db", gridtypes.Megabyte)
				if err := d.Sign(c.twin.ID, c.key); err != nil {
					return err
				}
				h, _ := d.Hash()
				ct, err := c.reg.CreateNodeContract(ctx, n.id, h, "", 0)
				if err != nil {
					return err
				}
				phContract[i] = time.Since(t0)
				d.ContractID = ct.ID
				if err := c.rmb.Call(ctx, nodeRec.TwinID, "zos.deployment.deploy", d, nil); err != nil {
					return err
				}
				phDeploy[i] = time.Since(t0) - phContract[i]
				// As zosctl does: the node answers zos.deployment.wait when
				// the deployment settled (or after wait_ms, then ask again).
				for {
					var got gridtypes.Deployment
					req := nodeapi.WaitRequest{ContractID: d.ContractID, WaitMS: 5000}
					if err := c.rmb.Call(ctx, nodeRec.TwinID, nodeapi.CmdWait, req, &got); err != nil {
						return err
					}
					switch got.Workloads[0].Result.State {
					case gridtypes.StateOk:
						return nil
					case gridtypes.StateError:
						return fmt.Errorf("contract %d: %s", d.ContractID, got.Workloads[0].Result.Error)
					}
				}
			}()
			if err != nil {
				errOnce.Do(func() { firstErr = err })
			}
			lat[i] = time.Since(t0)
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	time.Sleep(rssSettle)
	after := rssKiB(n.proc.cmd.Process.Pid)
	for _, l := range [][]time.Duration{lat, phContract, phDeploy} {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	}
	b.ReportMetric(float64(phContract[total/2].Microseconds())/1000, "contract-p50-ms")
	b.ReportMetric(float64(phDeploy[total/2].Microseconds())/1000, "deploy-call-p50-ms")
	b.ReportMetric(float64(total)/elapsed.Seconds(), "deployments/s")
	b.ReportMetric(float64(lat[total/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[total*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(idle)/1024, "idle-rss-MiB")
	b.ReportMetric(float64(after)/1024, "rss-after-1000-MiB")
}
