package testutil

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
)

// Logger returns the logger tests hand to the code under test. It discards
// everything unless ZOS_TEST_LOG=1, in which case it writes debug-level text
// to the test's log (shown with -v or when the test fails). Lines written
// after the test has ended are dropped rather than panicking.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("ZOS_TEST_LOG") != "1" {
		return slog.New(slog.DiscardHandler)
	}
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testWriter forwards to t.Log until the test ends.
type testWriter struct {
	mu   sync.Mutex // guards done and serialises t.Log against close
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
