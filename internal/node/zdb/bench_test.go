package zdb

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

const benchKeys = 1_000_000

func benchKey(i int) []byte { return []byte(fmt.Sprintf("key:%012d", i)) }

// BenchmarkMemoryPerKey reports the heap used per key of a user-mode
// namespace holding 1,000,000 keys (16-byte keys, 32-byte values).
func BenchmarkMemoryPerKey(b *testing.B) {
	for n := 0; n < b.N; n++ {
		dir := b.TempDir()
		s := openStore(b, dir, nil)
		ns := mustNS(b, s, DefaultNamespace)
		value := make([]byte, 32)
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < benchKeys; i++ {
			if _, _, err := ns.set(benchKey(i), value, 0); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchKeys, "bytes/key")
		runtime.KeepAlive(ns)
		s.Close()
		// After a restart the index is sized up front.
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		s = openStore(b, dir, nil)
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/startup")
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/benchKeys, "bytes/key-reopened")
		s.Close()
	}
}

// BenchmarkStartupNoIndex reports the start-up time of 1,000,000 keys when
// the index files are lost and the data files must be scanned.
func BenchmarkStartupNoIndex(b *testing.B) {
	for n := 0; n < b.N; n++ {
		dir := b.TempDir()
		s := openStore(b, dir, nil)
		ns := mustNS(b, s, DefaultNamespace)
		value := make([]byte, 32)
		for i := 0; i < benchKeys; i++ {
			if _, _, err := ns.set(benchKey(i), value, 0); err != nil {
				b.Fatal(err)
			}
		}
		s.Close()
		removeIndexes(nil, dir)
		start := time.Now()
		s = openStore(b, dir, nil)
		b.ReportMetric(float64(time.Since(start).Milliseconds()), "ms/startup")
		if got := mustNS(b, s, DefaultNamespace).keys.len(); got != benchKeys {
			b.Fatalf("got %d keys after rebuild", got)
		}
		s.Close()
	}
}

// BenchmarkSetGet measures the engine alone: 100,000 SET then GET pairs of
// 1 KiB values per iteration (so that -benchtime 1x still means something).
func BenchmarkSetGet(b *testing.B) {
	s := openStore(b, b.TempDir(), nil)
	defer s.Close()
	ns := mustNS(b, s, DefaultNamespace)
	value := make([]byte, 1024)
	var buf []byte
	const ops = 100000
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := 0; i < ops; i++ {
			k := benchKey(i)
			value[0], value[1] = byte(i), byte(n)
			if _, _, err := ns.set(k, value, 0); err != nil {
				b.Fatal(err)
			}
			var err error
			if buf, err = ns.get(k, buf[:0]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*ops)/b.Elapsed().Seconds(), "set+get/s")
}
