package zdb

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/zos-go/zos/internal/testutil"
)

// FuzzRecover writes arbitrary bytes after the headers of a data file and an
// index file and opens the store: recovery must never panic, must keep the
// store usable and must never serve an entry whose checksums fail.
func FuzzRecover(f *testing.F) {
	seedDir := f.TempDir()
	s := openStore(f, seedDir, nil)
	ns := mustNS(f, s, DefaultNamespace)
	ns.set([]byte("a"), []byte("hello"), 0)
	ns.set([]byte("b"), []byte("world"), 0)
	ns.del([]byte("a"))
	s.Close()
	data, _ := os.ReadFile(files(f, seedDir, "data")[0])
	index, _ := os.ReadFile(files(f, seedDir, "index")[0])
	f.Add(data[fileHeaderSize:], index[fileHeaderSize:])
	f.Add(data[fileHeaderSize:len(data)-3], index[fileHeaderSize:])
	f.Add(data[fileHeaderSize:], []byte{})
	f.Fuzz(func(t *testing.T, dataTail, indexTail []byte) {
		dir := t.TempDir()
		for _, p := range []struct {
			dir, name string
			head      []byte
			tail      []byte
		}{
			{"data", segName("data", 1), data[:fileHeaderSize], dataTail},
			{"index", segName("index", 1), index[:fileHeaderSize], indexTail},
		} {
			d := filepath.Join(dir, p.dir, DefaultNamespace)
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, p.name), append(append([]byte(nil), p.head...), p.tail...), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Settings present and no store-level sync: each run stays cheap.
		nsIndex := filepath.Join(dir, "index", DefaultNamespace)
		if err := os.WriteFile(filepath.Join(nsIndex, settingsFile), []byte(`{"public":true,"mode":"user"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := Config{DataDir: dir + "/data", IndexDir: dir + "/index"}
		cfg.setDefaults()
		ns, err := loadNamespace(&cfg, testutil.Logger(t), DefaultNamespace)
		if err != nil {
			return // refusing a damaged store is fine; panicking is not
		}
		defer ns.closeFiles()
		entries, _, _ := ns.scan(nil, true, 1000)
		for _, e := range entries {
			v, err := ns.get(e.Key, nil)
			if err != nil && !errors.Is(err, ErrCorrupted) {
				t.Fatalf("key %q: %v", e.Key, err)
			}
			if err == nil && uint32(len(v)) != e.Size {
				t.Fatalf("key %q: got %d bytes, index says %d", e.Key, len(v), e.Size)
			}
		}
		if _, _, err := ns.set([]byte("new"), []byte("value"), 0); err != nil {
			t.Fatalf("store not writable after recovery: %v", err)
		}
	})
}
