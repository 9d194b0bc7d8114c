package planetary

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/zos-go/zos/internal/sys/nft"
)

// helperEnv makes the test binary act as `zos planetary` (TestMain): the
// root tests start it inside a network namespace through StartProcess, as
// the node does, so that the library's sockets and its TUN belong there.
const helperEnv = "ZOS_PLANETARY_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		if err := Main(ctx, os.Args[2:], nft.Tables{}, os.Stdout, log); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startNode runs the overlay as a process in ns, as the node does, and
// stops it in t.Cleanup, checking that it ended on SIGTERM.
func startNode(t *testing.T, ns string, cfg Config) *Process {
	t.Helper()
	cfg.DataDir = t.TempDir()
	t.Setenv(helperEnv, "1")
	p, err := StartProcess(ns, append([]string{os.Args[0], "-test.run=^$"}, cfg.Args("ygg0")...), os.Stderr, 30*time.Second)
	os.Unsetenv(helperEnv)
	if err != nil {
		t.Fatalf("planetary in %s: %v", ns, err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("planetary in %s: %v", ns, err)
		}
	})
	return p
}
