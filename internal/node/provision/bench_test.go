package provision

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/gridtypes"
)

// BenchmarkStoreDeployments runs the store's writes of one zdb deployment
// (Create, SetResult ok, Done), 16 deployments at once, every commit
// fsynced: what bounds the node's deployment rate once the relay is fast.
//
//	go test -run '^$' -bench StoreDeployments -benchtime 1000x ./internal/node/provision
func BenchmarkStoreDeployments(b *testing.B) {
	st, err := OpenStore(filepath.Join(b.TempDir(), "store.bolt"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	const inflight = 16
	lat := make([]time.Duration, b.N)
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	var mu sync.Mutex // guards firstErr
	var firstErr error
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			if err := storeCycle(st, uint64(i+1)); err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
			}
			lat[i] = time.Since(t0)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	reportRate(b, lat, elapsed)
}

func storeCycle(st *Store, contract uint64) error {
	d := mkdep(contract, fmt.Sprintf(`db%d:zdb:{"size":1048576,"mode":"user"}`, contract))
	job := Job{Kind: JobProvision, Twin: 1, Contract: contract}
	if err := st.Create(d, job); err != nil {
		return err
	}
	jobs, err := st.Jobs()
	if err != nil || len(jobs) == 0 {
		return fmt.Errorf("jobs: %v, %d queued", err, len(jobs))
	}
	var seq uint64
	for _, j := range jobs {
		if j.Contract == contract {
			seq = j.Seq
		}
	}
	wl := d.Workloads[0]
	wl.Result = gridtypes.Result{State: gridtypes.StateOk, Data: []byte(`{"namespace":"x"}`)}
	if err := st.SetResult(1, contract, wl); err != nil {
		return err
	}
	return st.Done(seq)
}

func reportRate(b *testing.B, lat []time.Duration, elapsed time.Duration) {
	sorted := append([]time.Duration(nil), lat...)
	slicesSort(sorted)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "deployments/s")
	b.ReportMetric(float64(sorted[len(sorted)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(sorted[len(sorted)*99/100].Microseconds())/1000, "p99-ms")
}

func slicesSort(l []time.Duration) { slices.Sort(l) }
