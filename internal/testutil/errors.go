package testutil

import (
	"strings"
	"testing"
)

// WantError fails the test unless err matches want, as table tests give
// it: want "" means no error, anything else an error whose text holds
// want.
func WantError(t testing.TB, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("got %v, want no error", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("got %v, want an error about %q", err, want)
	}
}
