package fs

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

const benchSize = 64 << 20

// BenchmarkSequential measures sequential write and read of a 64 MiB file
// (MB/s): on a plain directory of the same disk, and through a qsfs mount
// over a directory backend on that disk: written (closed, so on the
// backend), read from the cache, and read cold on a new node (empty
// cache, every block fetched).
//
//	go test -run '^$' -bench Sequential -benchtime 3x ./internal/node/qsfs/fs/
func BenchmarkSequential(b *testing.B) {
	data := randomBytes(benchSize, 42)
	b.Run("plain/write", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(benchSize)
		for range b.N {
			writeSynced(b, filepath.Join(dir, "f"), data)
		}
	})
	b.Run("plain/read-cold", func(b *testing.B) {
		p := filepath.Join(b.TempDir(), "f")
		writeSynced(b, p, data)
		b.SetBytes(benchSize)
		for range b.N {
			b.StopTimer()
			dropPageCache(b, p)
			b.StartTimer()
			readAll(b, p)
		}
	})
	backend := newDirBackend(b)
	cfg := testConfig(b, 256<<20)
	f := mountFS(b, cfg, backend)
	last := ""
	b.Run("qsfs/write", func(b *testing.B) {
		b.SetBytes(benchSize)
		for i := range b.N {
			// new content each time: nothing is deduplicated
			b.StopTimer()
			fresh := randomBytes(benchSize, byte(i))
			if last != "" {
				os.Remove(last)
			}
			last = filepath.Join(f.Dir(), fmt.Sprintf("f%d", i))
			b.StartTimer()
			writeSynced(b, last, fresh)
		}
	})
	b.Run("qsfs/read-cached", func(b *testing.B) {
		b.SetBytes(benchSize)
		for range b.N {
			readAll(b, last)
		}
	})
	if err := f.Unmount(); err != nil {
		b.Fatal(err)
	}
	b.Run("qsfs/read-cold", func(b *testing.B) {
		b.SetBytes(benchSize)
		for range b.N {
			b.StopTimer()
			g := mountFS(b, testConfig(b, 256<<20), backend)
			b.StartTimer()
			readAll(b, filepath.Join(g.Dir(), filepath.Base(last)))
			b.StopTimer()
			if st := g.Stats(); st.FetchBytes < benchSize {
				b.Fatalf("cold read fetched %d bytes, want the whole %d", st.FetchBytes, benchSize)
			}
			g.Abort()
			b.StartTimer()
		}
	})
}

// writeSynced writes the file in 1 MiB writes, fsyncs and closes it.
func writeSynced(b *testing.B, p string, data []byte) {
	fh, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < len(data); off += 1 << 20 {
		if _, err := fh.Write(data[off : off+1<<20]); err != nil {
			b.Fatal(err)
		}
	}
	if err := fh.Sync(); err != nil {
		b.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		b.Fatal(err)
	}
}

func readAll(b *testing.B, p string) {
	fh, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	n, err := io.CopyBuffer(io.Discard, fh, make([]byte, 1<<20))
	if err != nil || n != benchSize {
		b.Fatalf("read %d bytes, %v; want %d", n, err, benchSize)
	}
}

// dropPageCache evicts one file from the page cache.
func dropPageCache(b *testing.B, p string) {
	fh, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	if err := unix.Fadvise(int(fh.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
}
