package testutil

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update is go test's -update flag, in every package whose tests use this
// kit: Golden rewrites its files instead of comparing with them.
var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// Golden compares got with the file at path (under testdata/), failing
// the test with both when they differ. With -update it first writes got
// there, making directories as needed, so that a reviewed change of the
// output becomes the new golden file.
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to write it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: got\n%s\nwant\n%s", path, got, want)
	}
}
