package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		perm fs.FileMode
	}{
		{"new 0600", nil, 0o600},
		{"new 0644", nil, 0o644},
		{"replace", []byte("old content, longer than the new"), 0o640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "state.json")
			if tt.old != nil {
				if err := os.WriteFile(p, tt.old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteFile(p, []byte("new"), tt.perm); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil || string(b) != "new" {
				t.Fatalf("got %q, %v, want %q", b, err, "new")
			}
			st, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode().Perm(); got != tt.perm {
				t.Fatalf("got mode %v, want %v", got, tt.perm)
			}
			assertOnly(t, dir, "state.json")
		})
	}
}

// TestAbort: a file closed without Commit leaves the destination as it
// was and no temporary file behind.
func TestAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("got %q, want the old content", b)
	}
	assertOnly(t, dir, "f")
	if err := f.Commit(); err == nil {
		t.Fatal("commit after close: got no error")
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("got %q after a refused commit, want the old content", b)
	}
}

// TestCommitFailure: a rename that cannot happen (the destination is a
// directory) is an error, and the temporary file is removed.
func TestCommitFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "d")
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("data"), 0o600); err == nil {
		t.Fatal("got no error writing over a non-empty directory")
	}
	assertOnly(t, dir, "d")
	if err := WriteFile(filepath.Join(dir, "missing", "f"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist for a missing directory", err)
	}
}

func TestRename(t *testing.T) {
	dir := t.TempDir()
	tmp, p := filepath.Join(dir, "tmp"), filepath.Join(dir, "f")
	if err := os.WriteFile(tmp, []byte("db"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "db" {
		t.Fatalf("got %q, want %q", b, "db")
	}
	assertOnly(t, dir, "f")
	if err := Rename(tmp, p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist for a missing file", err)
	}
}

func assertOnly(t *testing.T, dir, name string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != name {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("got %v in the directory, want only %s", names, name)
	}
}
