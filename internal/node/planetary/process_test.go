package planetary

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/testutil"
)

// A process that never prints its address is an error, not a hang, and is
// not left running.
func TestStartProcessWithoutAnAddressIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name string
		argv []string
		want string
	}{
		{"exits at once", []string{"false"}, "no address"},
		{"prints garbage", []string{"echo", "hello"}, "no address"},
		{"prints a bad address", []string{"echo", "nope 300::/64"}, "address"},
		{"stays silent", []string{"sleep", "60"}, "within"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p, err := StartProcess("", tc.argv, io.Discard, time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, %v, want an error containing %q", p, err, tc.want)
			}
			if took := time.Since(start); took > 15*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

// `zos planetary` refuses a bad peer before creating anything.
func TestMainRefusesBadPeer(t *testing.T) {
	dir := t.TempDir()
	err := Main(context.Background(), Config{DataDir: dir, Peers: []string{"9651"}}.Args("ygg0"), nil, io.Discard, testutil.Logger(t))
	if err == nil || !strings.Contains(err.Error(), `planetary peer "9651"`) {
		t.Fatalf("got %v, want a bad peer error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("got %d files in the data dir, want none", len(ents))
	}
}

func TestMainRefusesBadAllowPort(t *testing.T) {
	for _, v := range []string{"0", "65536", "ssh"} {
		err := Main(context.Background(), []string{"--data", t.TempDir(), "--allow-port", v}, nil, io.Discard, testutil.Logger(t))
		if err == nil || !strings.Contains(err.Error(), "not a port") {
			t.Errorf("--allow-port %s: got %v, want a not-a-port error", v, err)
		}
	}
}
