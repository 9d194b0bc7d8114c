package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
	"github.com/zos-go/zos/internal/nodeapi"
	"github.com/zos-go/zos/internal/testutil"
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
	time.Sleep(rssSettle)
	idle := rssKiB(n.proc.cmd.Process.Pid)
	b.ResetTimer()
	r := deployMany(b, c, n, total, inflight)
	b.StopTimer()
	if r.err != nil {
		b.Fatal(r.err)
	}
	time.Sleep(rssSettle)
	after := rssKiB(n.proc.cmd.Process.Pid)
	b.ReportMetric(float64(r.phContract[total/2].Microseconds())/1000, "contract-p50-ms")
	b.ReportMetric(float64(r.phDeploy[total/2].Microseconds())/1000, "deploy-call-p50-ms")
	b.ReportMetric(float64(total)/r.elapsed.Seconds(), "deployments/s")
	b.ReportMetric(float64(r.lat[total/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.lat[total*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(r.calls)/float64(total), "node-calls/deployment")
	b.ReportMetric(float64(r.nodeCPU.Microseconds())/1000/float64(total), "node-cpu-ms/deployment")
	b.ReportMetric(float64(idle)/1024, "idle-rss-MiB")
	b.ReportMetric(float64(after)/1024, "rss-after-1000-MiB")
}

// deployFigures is what deployMany measured: latencies sorted, phases sorted.
type deployFigures struct {
	lat, phContract, phDeploy []time.Duration
	elapsed                   time.Duration
	calls                     int64         // relay calls to the node (deploy and waits)
	nodeCPU                   time.Duration // CPU time the node process used meanwhile
	err                       error         // the first error
}

// deployMany sends total signed zdb deployments to node n through the
// relay (contract, deploy, zos.deployment.wait until ok), inflight at once.
func deployMany(tb testing.TB, c *direct, n *node, total, inflight int) deployFigures {
	ctx := context.Background()
	nodeRec, err := c.reg.Node(ctx, n.id)
	if err != nil {
		tb.Fatal(err)
	}
	r := deployFigures{
		lat: make([]time.Duration, total),
		// Phases: contract creation, the deploy call, then until ok.
		phContract: make([]time.Duration, total),
		phDeploy:   make([]time.Duration, total),
	}
	var calls atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, inflight)
	var errOnce sync.Once
	cpu0 := procCPU(tb, n.proc.cmd.Process.Pid)
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
				r.phContract[i] = time.Since(t0)
				d.ContractID = ct.ID
				calls.Add(1)
				if err := c.rmb.Call(ctx, nodeRec.TwinID, nodeapi.CmdDeploy, d, nil); err != nil {
					return err
				}
				r.phDeploy[i] = time.Since(t0) - r.phContract[i]
				// As zosctl does: the node answers zos.deployment.wait when
				// the deployment settled (or after wait_ms, then ask again).
				for {
					var got gridtypes.Deployment
					req := nodeapi.WaitRequest{ContractID: d.ContractID, WaitMS: 5000}
					calls.Add(1)
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
				errOnce.Do(func() { r.err = err })
			}
			r.lat[i] = time.Since(t0)
		}(i)
	}
	wg.Wait()
	r.elapsed = time.Since(start)
	r.nodeCPU = procCPU(tb, n.proc.cmd.Process.Pid) - cpu0
	r.calls = calls.Load()
	for _, l := range [][]time.Duration{r.lat, r.phContract, r.phDeploy} {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	}
	return r
}

// procCPU is the CPU time (user and system) process pid used so far.
func procCPU(tb testing.TB, pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("reading the node's cpu time: %v", err)
	}
	// Fields after the command (which may hold spaces): state is field 3,
	// utime and stime are fields 14 and 15, in clock ticks of 1/100 s.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		tb.Fatalf("malformed /proc/%d/stat: %q", pid, data)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("malformed /proc/%d/stat: %q", pid, data)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// Reference figures of BenchmarkDeployments (1,000 deployments, 16 in
// flight) at commit h-perf, load ~15 on 2 cores: the node used 6.6 ms of
// CPU per deployment and the client made 2 relay calls to the node per
// deployment (deploy, then one wait answered when it settled).
const (
	deployNodeCPURef = 7 * time.Millisecond
	deployCallsRef   = 2
)

// TestDeployCostFloor is the short tier of BenchmarkDeployments that make
// test runs: 64 deployments, 16 in flight, until ok. It fails only on a
// gross regression, ten times the reference: of the node's CPU time per
// deployment (not the wall clock, which the neighbours on a shared machine
// decide), or of the relay calls per deployment (polling the state instead
// of waiting for the event multiplies them).
func TestDeployCostFloor(t *testing.T) {
	testutil.SkipShort(t, "deployment cost floor")
	_, n, u := setup(t)
	c := dial(t, u)
	const total = 64
	r := deployMany(t, c, n, total, 16)
	if r.err != nil {
		t.Fatal(r.err)
	}
	cpu := r.nodeCPU / total
	calls := float64(r.calls) / total
	t.Logf("%d deployments in %s: node cpu %s per deployment (reference %s), %.2f calls per deployment (reference %d), p50 %s",
		total, r.elapsed.Round(time.Millisecond), cpu, deployNodeCPURef, calls, deployCallsRef, r.lat[total/2].Round(time.Millisecond))
	if cpu >= 10*deployNodeCPURef {
		t.Errorf("got %s of node CPU per deployment, want under %s (ten times the reference)", cpu, 10*deployNodeCPURef)
	}
	if calls >= 10*deployCallsRef {
		t.Errorf("got %.2f relay calls per deployment, want under %d (ten times the reference)", calls, 10*deployCallsRef)
	}
}
