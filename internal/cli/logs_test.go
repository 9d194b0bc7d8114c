package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"

	"github.com/zos-go/zos/internal/consolelog"
	"github.com/zos-go/zos/internal/nodeapi"
)

// fileFetch answers as the node's zos.zmachine.logs handler does, from the
// file at path, in chunks of at most chunk bytes.
func fileFetch(path string, chunk int) logFetch {
	return func(_ context.Context, offset int64, max int) (nodeapi.LogsResponse, error) {
		c, err := consolelog.Read(path, offset, min(max, chunk))
		if err != nil {
			return nodeapi.LogsResponse{}, err
		}
		return nodeapi.LogsResponse{Data: c.Data, Next: c.Next, Size: c.Size, Rotated: c.Rotated}, nil
	}
}

func logLines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s line %04d\n", prefix, i)
	}
	return b.String()
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestPrintLogs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	appendFile(t, path, logLines("boot", 0, 100))
	tests := []struct {
		name  string
		tail  int
		chunk int
		want  string
	}{
		{"whole log in small chunks", 0, 100, logLines("boot", 0, 100)},
		{"last lines", 3, 1 << 20, logLines("boot", 97, 100)},
		{"more lines than the log", 1000, 1 << 20, logLines("boot", 0, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := printLogs(context.Background(), &Env{Stdout: &out, Stderr: &out}, fileFetch(path, tt.chunk), logsOptions{tail: tt.tail})
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("got %d bytes %q..., want %d bytes", out.Len(), out.String()[:min(out.Len(), 40)], len(tt.want))
			}
		})
	}
}

func TestLastLines(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc\n", 5, "a\nb\nc\n"},
		{"", 1, ""},
		{"abc", 1, "abc"},
	} {
		if got := string(lastLines([]byte(tt.in), tt.n)); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// rotateFile rewrites path in place with its last keep bytes, as the node.
func rotateFile(t *testing.T, path string, keep int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[max(0, len(b)-keep):], 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, out *testutil.Buffer, want string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, "the output", func() (bool, error) {
		got := out.String()
		return got == want, fmt.Errorf("got %d bytes ending %q, want %d bytes ending %q", len(got), got[max(0, len(got)-60):], len(want), want[max(0, len(want)-60):])
	})
}

func TestPrintLogsFollow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	appendFile(t, path, logLines("boot", 0, 10))
	var out, errs testutil.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- printLogs(ctx, &Env{Stdout: &out, Stderr: &errs}, fileFetch(path, 512), logsOptions{tail: 2, follow: true, poll: 10 * time.Millisecond})
	}()
	want := logLines("boot", 8, 10)
	waitFor(t, &out, want)

	appendFile(t, path, logLines("run", 0, 50))
	want += logLines("run", 0, 50)
	waitFor(t, &out, want)

	// Rotation keeping the end: nothing lost, nothing repeated.
	rotateFile(t, path, 400)
	appendFile(t, path, logLines("rotated", 0, 5))
	want += logLines("rotated", 0, 5)
	waitFor(t, &out, want)

	// Rotation dropping everything that was printed: start over, with a notice.
	appendFile(t, path, logLines("gone", 0, 40))
	rotateFile(t, path, 0)
	appendFile(t, path, logLines("fresh", 0, 3))
	testutil.Eventually(t, 10*time.Second, "the lines after a full rotation", func() (bool, error) {
		got := out.String()
		return strings.HasSuffix(got, logLines("fresh", 0, 3)), fmt.Errorf("after a full rotation, output ends %q", got[max(0, len(got)-80):])
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("follow ended with %v, want nil on Ctrl-C", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not stop on cancel")
	}
	if strings.Count(out.String(), "rotated line 0000") != 1 {
		t.Errorf("lines after the first rotation printed %d times", strings.Count(out.String(), "rotated line 0000"))
	}
}

func TestLogsUsage(t *testing.T) {
	home := t.TempDir()
	for _, args := range [][]string{{"logs"}, {"logs", "12"}, {"logs", "x", "vm"}, {"logs", "12", "vm", "--tail", "-1"}} {
		if _, errs, code := run(t, home, args...); code != 2 {
			t.Errorf("zosctl %s: got exit %d (%s), want 2", strings.Join(args, " "), code, errs)
		}
	}
	out, _, code := run(t, home, "--help")
	if code != 0 || !strings.Contains(out, "logs") {
		t.Errorf("help does not list logs: %q", out)
	}
}
