package fs

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// crashFile is the content of writer w's file n: its size and bytes follow
// from its name.
func crashFile(w, n int) []byte {
	return randomBytes((n%5)*700<<10+n*333, byte(w*64+n%64))
}

// TestCrashUnderLoad cuts the backend off (the node dies: nothing more
// reaches it) while writers create, write, close and rename files and
// checkpoints run every few milliseconds. A new node then mounts what the
// backend holds: the tree loads, every file reads without error, every
// file is a prefix of what its writer wrote, and every file whose close
// succeeded is there whole, under its old or new name.
func TestCrashUnderLoad(t *testing.T) {
	b := newDirBackend(t)
	cfg := testConfig(t, 8<<20)
	cfg.CheckpointInterval = 15 * time.Millisecond
	cfg.OpenBlocks = 2
	f := mountFS(t, cfg, b)
	m := f.Dir()
	const writers = 3
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards acked
		acked = map[string]string{}
	)
	for w := range writers {
		os.Mkdir(filepath.Join(m, fmt.Sprint(w)), 0o755)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				name := filepath.Join(fmt.Sprint(w), fmt.Sprintf("f-%d-%d", w, n))
				fh, err := os.Create(filepath.Join(m, name))
				if err != nil {
					return
				}
				data := crashFile(w, n)
				for off := 0; off < len(data) && err == nil; off += 64 << 10 {
					_, err = fh.Write(data[off:min(off+64<<10, len(data))])
				}
				if cerr := fh.Close(); err != nil || cerr != nil {
					return
				}
				renamed := strings.Replace(name, "f-", "r-", 1)
				mu.Lock()
				acked[name] = renamed
				mu.Unlock()
				if n%3 == 0 {
					if os.Rename(filepath.Join(m, name), filepath.Join(m, renamed)) != nil {
						return
					}
				}
			}
		}()
	}
	testutil.Eventually(t, 30*time.Second, "writers to close 12 files", func() (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 12, nil
	})
	b.fail.Store(true) // the node is gone for the backend
	wg.Wait()
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	b.fail.Store(false)

	g := mountFS(t, testConfig(t, 8<<20), b)
	seen := map[string]bool{}
	err := filepath.WalkDir(g.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(g.Dir(), p)
		var w, n int
		if _, err := fmt.Sscanf(strings.Replace(filepath.Base(rel), "r-", "f-", 1), "f-%d-%d", &w, &n); err != nil {
			return fmt.Errorf("unexpected file %s", rel)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", rel, err)
		}
		if want := crashFile(w, n); !bytes.Equal(got, want[:min(len(got), len(want))]) || len(got) > len(want) {
			return fmt.Errorf("%s: %d bytes that are not a prefix of the %d written", rel, len(got), len(want))
		}
		if len(got) == len(crashFile(w, n)) {
			seen[rel] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, renamed := range acked {
		if !seen[name] && !seen[renamed] {
			t.Errorf("%s was closed without error but is not whole on the new node", name)
		}
	}
	t.Logf("%d files acknowledged, %d whole files on the new node", len(acked), len(seen))
}
