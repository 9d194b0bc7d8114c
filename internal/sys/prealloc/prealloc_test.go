package prealloc

import (
	"os"
	"path/filepath"
	"testing"
)

func TestAllocate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	var f Files
	if err := f.Allocate(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 1<<20 {
		t.Fatalf("after create: %v, %v", st, err)
	}
	if err := f.Allocate(path, 2<<20); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() != 2<<20 {
		t.Errorf("after grow: size %d", st.Size())
	}
	if err := f.Allocate(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() != 2<<20 {
		t.Errorf("after smaller allocate: size %d, want unchanged", st.Size())
	}
	if err := f.Allocate(filepath.Join(t.TempDir(), "missing", "disk"), 1); err == nil {
		t.Error("allocate in a missing directory: want an error")
	}
}
