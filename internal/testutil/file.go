package testutil

import (
	"os"
	"testing"
)

// KeepTail rewrites the file at path in place with its last keep bytes, as
// the node rotates a VM's console log: the same inode shrinks, so a reader
// that holds it open must notice the cut.
func KeepTail(t testing.TB, path string, keep int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = b[max(0, len(b)-keep):]
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
}
