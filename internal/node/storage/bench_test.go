package storage

import (
	"fmt"
	"testing"
	"time"
)

// Benchmarks on real loop devices (root). `make bench` runs them once each;
// for steadier figures:
//
//	go test -run '^$' -bench . -benchtime 5x ./internal/node/storage

// BenchmarkDiscoverMount4Pools measures Start on four hosted disks that
// already carry pools (a reboot); the first Start (mkfs) is reported apart.
func BenchmarkDiscoverMount4Pools(b *testing.B) {
	requireKernel(b)
	cfg := hostedConfig(b, SSD, SSD, HDD, HDD)
	m, err := New(cfg, HostSystem(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	t0 := time.Now()
	if err := m.Start(b.Context()); err != nil {
		b.Fatal(err)
	}
	first := time.Since(t0)
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := m.Start(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if n := len(m.Pools()); n != 4 {
			b.Fatalf("%d pools, want 4", n)
		}
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(first.Milliseconds()), "first-start-ms")
}

// BenchmarkVolumeCreateDelete creates then deletes 100 volumes per
// iteration and reports each rate.
func BenchmarkVolumeCreateDelete(b *testing.B) {
	requireKernel(b)
	m := startModule(b, hostedConfig(b, SSD))
	const n = 100
	var create, del time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		for j := 0; j < n; j++ {
			if _, err := m.VolumeCreate(fmt.Sprintf("bench-%d", j), 1<<20); err != nil {
				b.Fatal(err)
			}
		}
		t1 := time.Now()
		for j := 0; j < n; j++ {
			if err := m.VolumeDelete(fmt.Sprintf("bench-%d", j)); err != nil {
				b.Fatal(err)
			}
		}
		create += t1.Sub(t0)
		del += time.Since(t1)
	}
	b.ReportMetric(float64(n*b.N)/create.Seconds(), "creates/s")
	b.ReportMetric(float64(n*b.N)/del.Seconds(), "deletes/s")
}

// BenchmarkVdisk10GiB measures creating a preallocated 10 GiB vdisk.
func BenchmarkVdisk10GiB(b *testing.B) {
	requireKernel(b)
	cfg := hostedConfig(b)
	cfg.Disks = []HostedDisk{{Type: SSD, Size: 16 * gib}}
	m := startModule(b, cfg)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.DiskCreate("bench-disk", 10*gib); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := m.DiskDelete("bench-disk"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkCheck4Pools measures one health check of four healthy pools
// (file and device sizes, statfs, a synced 4 KiB write probe, btrfs device
// stats each): what the node pays every --disk-check-every.
func BenchmarkCheck4Pools(b *testing.B) {
	requireKernel(b)
	m := startModule(b, hostedConfig(b, SSD, SSD, HDD, HDD))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if failed := m.Check(); len(failed) != 0 {
			b.Fatalf("healthy pools failed: %+v", failed)
		}
	}
}
