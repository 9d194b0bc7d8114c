package qsfs

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// BenchmarkLoad times New over meta backends holding 1024 object records
// (what 1 GiB of qsfs blocks leaves there): the metadata a new node reads
// before it serves anything. It prints the time per record, to weigh the
// metadata round trips against the data of a recovery.
func BenchmarkLoad(b *testing.B) {
	const objects = 1024
	c := newCluster(b, 3, 2, 3)
	c.cfg.Timeout = 30 * time.Second
	s, err := New(c.cfg, testutil.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range objects {
		if err := s.Put(ctx, fmt.Sprintf("qsfs-blk-%04d", i), []byte("x")); err != nil {
			b.Fatal(err)
		}
	}
	s.Close()
	var total time.Duration
	for b.Loop() {
		t0 := time.Now()
		s, err := New(c.cfg, testutil.Logger(b))
		total += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if names, _ := s.List(ctx, "qsfs-blk-"); len(names) != objects {
			b.Fatalf("loaded %d objects, want %d", len(names), objects)
		}
		s.Close()
	}
	per := total / time.Duration(b.N)
	b.ReportMetric(per.Seconds(), "s/load")
	fmt.Printf("qsfs load of %d object records from 3 meta backends: %v (%v per record)\n", objects, per.Round(time.Millisecond), (per / objects).Round(time.Microsecond))
}
