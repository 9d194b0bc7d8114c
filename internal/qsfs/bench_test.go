package qsfs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// BenchmarkPutGet writes and reads 16 MiB objects (4 MiB chunks, snappy
// over random data, AES-256-GCM, 4+2 Reed-Solomon) through six loopback
// 0-db backends in three groups, and prints the Put and Get rates.
func BenchmarkPutGet(b *testing.B) {
	c := newCluster(b, 3, 2, 3)
	c.cfg.ChunkSize = DefaultChunkSize
	c.cfg.Timeout = 30 * time.Second
	s, err := New(c.cfg, testutil.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const size = 16 << 20
	data := random(b, size)
	ctx := context.Background()
	var put, get time.Duration
	b.SetBytes(2 * size)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bench-%d", i%4)
		t0 := time.Now()
		if err := s.Put(ctx, name, data); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := s.Get(ctx, name); err != nil {
			b.Fatal(err)
		}
		put += t1.Sub(t0)
		get += time.Since(t1)
	}
	n := float64(b.N) * size / (1 << 20)
	b.ReportMetric(n/put.Seconds(), "put-MB/s")
	b.ReportMetric(n/get.Seconds(), "get-MB/s")
	fmt.Printf("qsfs over loopback zdb: put %.1f MB/s, get %.1f MB/s (%d x 16 MiB)\n", n/put.Seconds(), n/get.Seconds(), b.N)
}

// BenchmarkRepairWipedBackend stores 64 MiB, wipes one of the six
// backends (a replaced disk) and times the Repair that rewrites its
// shards; it prints the rate over the object data checked.
func BenchmarkRepairWipedBackend(b *testing.B) {
	const size = 64 << 20
	for b.Loop() {
		b.StopTimer()
		c := newCluster(b, 3, 2, 3)
		c.cfg.ChunkSize = DefaultChunkSize
		c.cfg.Timeout = 30 * time.Second
		s, err := New(c.cfg, testutil.Logger(b))
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		for i := range 4 {
			if err := s.Put(ctx, fmt.Sprint("obj-", i), random(b, size/4)); err != nil {
				b.Fatal(err)
			}
		}
		c.groups[1][0].Wipe()
		b.StartTimer()
		t0 := time.Now()
		rep, err := s.Repair(ctx)
		d := time.Since(t0)
		b.StopTimer()
		if err != nil || rep.ShardsRewritten == 0 {
			b.Fatalf("Repair: %+v, %v", rep, err)
		}
		fmt.Printf("qsfs repair after a wiped backend: %d MiB checked, %d shards rewritten in %v (%.1f MB/s)\n",
			size>>20, rep.ShardsRewritten, d.Round(time.Millisecond), float64(size)/(1<<20)/d.Seconds())
		s.Close()
		b.StartTimer()
	}
}
